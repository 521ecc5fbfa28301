//! Fuzzes what the flow endpoints make of a request: the query string (its `action`, `<name>@<flow id>`) and the
//! JSON body, then the inputs checked against actions as the flows offer them. The input is `query\nbody`. Nothing
//! may panic; an action's name has no `@`; accepted inputs have every required input (not
//! null) and only allowed values where an input lists them.
#![no_main]

use gatehouse_api::{FlowAction, FlowCall, FlowInput, parse_flow_request, validate_inputs};
use gatehouse_core::ids::FlowId;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// Actions shaped as the login and profile flows offer them: a provider from a list, a required token, an
/// optional verifier.
fn actions(flow_id: FlowId) -> Vec<FlowAction> {
    let provider =
        FlowInput::hidden("provider", "string", true).allowing([("microsoft".to_owned(), "Microsoft".to_owned())]);
    vec![
        FlowAction::new(
            "/login",
            flow_id,
            "thirdparty_oauth",
            "",
            vec![
                FlowInput::hidden("redirect_to", "string", true),
                provider,
                FlowInput::hidden("code_verifier", "string", false),
            ],
        ),
        FlowAction::new("/login", flow_id, "exchange_token", "", vec![FlowInput::hidden("token", "string", true)]),
        FlowAction::new("/login", flow_id, "back", "", Vec::new()),
    ]
}

fn holds(action: &FlowAction, input_data: &Map<String, Value>) {
    for input in action.inputs() {
        let value = input_data.get(input.name()).filter(|value| !value.is_null());
        assert!(!input.is_required() || value.is_some(), "required {} accepted without a value", input.name());
        if let Some(value) = value {
            assert!(input.accepts(value), "{} accepted {value}", input.name());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (query, body) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let Ok(query) = std::str::from_utf8(query) else { return };
    let Ok(FlowCall::Action(call)) = parse_flow_request(Some(query), body) else { return };
    assert!(!call.action.contains('@'), "{:?} is not an action name", call.action);
    for definition in actions(call.flow_id) {
        if validate_inputs(&definition, &call.input_data).is_ok() {
            holds(&definition, &call.input_data);
        }
    }
});
