//! Fuzzes the configuration file: YAML parsed into the configuration model, then validated. Nothing may panic, and
//! a configuration that validates must start what it enables: with Microsoft on, the provider settings assemble
//! (only an unusable certificate may still refuse) and the authorize URL builds.
#![no_main]

use gatehouse::config::read_yaml;
use gatehouse_core::clock::ManualClock;
use gatehouse_oidc::microsoft::{MicrosoftClient, MicrosoftSettings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = read_yaml(text) else { return };
    if !config.validate().is_empty() {
        return;
    }
    let settings = MicrosoftSettings::from_config(&config.third_party);
    if config.third_party.providers.microsoft.enabled {
        match settings {
            Ok(Some(settings)) => {
                let clock = std::sync::Arc::new(ManualClock::default());
                let client = MicrosoftClient::new(settings, clock).expect("a client for valid settings");
                let url = client.authorize_url("state", "nonce", "challenge");
                assert!(url.query().is_some_and(|query| query.contains("code_challenge=challenge")));
            }
            Ok(None) => panic!("a valid configuration enables Microsoft, but its settings are incomplete"),
            Err(_) => {}
        }
    } else {
        assert!(matches!(settings, Ok(None)));
    }
});
