//! The counters `/metrics` shows besides the credential ones: responses per listener and status class, and
//! finished sign-ins by outcome. A handful of fixed series, so plain atomics and no metrics library; every label
//! value comes from a fixed list, so no client can grow the number of series.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::{extract::State, http::StatusCode, response::Response};
use gatehouse_core::error::ThirdPartyErrorCode;
use gatehouse_store::AccountOutcome;

use crate::AppState;

/// Which listener answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Public,
    Admin,
}

impl Listener {
    const ALL: [Self; 2] = [Self::Public, Self::Admin];

    fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Admin => "admin",
        }
    }
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// The accounts a sign-in can reach, in the order of [`sign_in_index`].
const SUCCESSES: [&str; 3] = ["signed_in", "signed_up", "linked"];
/// A failure whose code the provider chose (`access_denied`, …): counted together, since the provider's `error`
/// reaches the callback from the browser and could be anything.
const PROVIDER_ERROR: &str = "provider_error";
const SIGN_IN_OUTCOMES: usize = SUCCESSES.len() + ThirdPartyErrorCode::ALL.len() + 1;

#[derive(Debug, Default)]
pub struct Counters {
    responses: [[AtomicU64; STATUS_CLASSES.len()]; Listener::ALL.len()],
    sign_ins: [AtomicU64; SIGN_IN_OUTCOMES],
}

impl Counters {
    pub fn count_response(&self, listener: Listener, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, STATUS_CLASSES.len()) - 1;
        self.responses[listener as usize][class].fetch_add(1, Ordering::Relaxed);
    }

    /// A sign-in that reached the callback: the account it reached, or the failure's code (Hanko's `error`).
    pub fn count_sign_in(&self, outcome: Result<AccountOutcome, &str>) {
        self.sign_ins[sign_in_index(outcome)].fetch_add(1, Ordering::Relaxed);
    }

    /// The counters in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut text = String::from(
            "# HELP gatehouse_http_responses_total Responses sent, per listener and status class.\n\
             # TYPE gatehouse_http_responses_total counter\n",
        );
        for listener in Listener::ALL {
            for (class, name) in STATUS_CLASSES.iter().enumerate() {
                let count = self.responses[listener as usize][class].load(Ordering::Relaxed);
                text.push_str(&format!(
                    "gatehouse_http_responses_total{{listener=\"{}\",status=\"{name}\"}} {count}\n",
                    listener.as_str()
                ));
            }
        }
        text.push_str(
            "# HELP gatehouse_sign_ins_total Sign-ins finished at the provider callback, by outcome: the account \
             reached, or the error code the browser was sent.\n\
             # TYPE gatehouse_sign_ins_total counter\n",
        );
        for (index, count) in self.sign_ins.iter().enumerate() {
            text.push_str(&format!(
                "gatehouse_sign_ins_total{{provider=\"microsoft\",outcome=\"{}\"}} {}\n",
                sign_in_label(index),
                count.load(Ordering::Relaxed)
            ));
        }
        text
    }
}

/// Middleware of each listener: counts the response on its way out.
pub async fn count_response<B>(State((state, listener)): State<(AppState, Listener)>, response: Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    state.counters().count_response(listener, response.status());
    response.map(axum::body::Body::new)
}

/// Successes first, then Hanko's codes in their order, then the provider's own codes together.
fn sign_in_index(outcome: Result<AccountOutcome, &str>) -> usize {
    match outcome {
        Ok(AccountOutcome::SignedIn) => 0,
        Ok(AccountOutcome::SignedUp) => 1,
        Ok(AccountOutcome::Linked) => 2,
        Err(code) => ThirdPartyErrorCode::ALL
            .iter()
            .position(|known| known.as_str() == code)
            .map_or(SIGN_IN_OUTCOMES - 1, |position| SUCCESSES.len() + position),
    }
}

fn sign_in_label(index: usize) -> &'static str {
    match index.checked_sub(SUCCESSES.len()) {
        None => SUCCESSES[index],
        Some(failure) => ThirdPartyErrorCode::ALL.get(failure).map_or(PROVIDER_ERROR, |code| code.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(text: &str, name: &str) -> u64 {
        let line = text.lines().find(|line| line.starts_with(name)).unwrap_or_else(|| panic!("{name} in {text}"));
        line.rsplit(' ').next().and_then(|count| count.parse().ok()).expect("a count")
    }

    #[test]
    fn responses_are_counted_per_listener_and_class() {
        let counters = Counters::default();
        counters.count_response(Listener::Public, StatusCode::OK);
        counters.count_response(Listener::Public, StatusCode::NO_CONTENT);
        counters.count_response(Listener::Public, StatusCode::TEMPORARY_REDIRECT);
        counters.count_response(Listener::Admin, StatusCode::UNAUTHORIZED);
        counters.count_response(Listener::Admin, StatusCode::INTERNAL_SERVER_ERROR);
        let text = counters.render();
        for (name, count) in [
            (r#"gatehouse_http_responses_total{listener="public",status="2xx"}"#, 2),
            (r#"gatehouse_http_responses_total{listener="public",status="3xx"}"#, 1),
            (r#"gatehouse_http_responses_total{listener="public",status="4xx"}"#, 0),
            (r#"gatehouse_http_responses_total{listener="admin",status="4xx"}"#, 1),
            (r#"gatehouse_http_responses_total{listener="admin",status="5xx"}"#, 1),
        ] {
            assert_eq!(series(&text, name), count, "{name}");
        }
    }

    #[test]
    fn every_outcome_has_its_own_series_and_unknown_codes_share_one() {
        let counters = Counters::default();
        counters.count_sign_in(Ok(AccountOutcome::SignedUp));
        counters.count_sign_in(Ok(AccountOutcome::SignedIn));
        counters.count_sign_in(Ok(AccountOutcome::SignedIn));
        counters.count_sign_in(Ok(AccountOutcome::Linked));
        counters.count_sign_in(Err("user_conflict"));
        counters.count_sign_in(Err("access_denied"));
        counters.count_sign_in(Err("made_up_by_a_client"));
        let text = counters.render();
        let outcome = |label: &str| {
            series(&text, &format!("gatehouse_sign_ins_total{{provider=\"microsoft\",outcome=\"{label}\"}}"))
        };
        assert_eq!(
            [outcome("signed_up"), outcome("signed_in"), outcome("linked"), outcome("user_conflict")],
            [1, 2, 1, 1]
        );
        assert_eq!((outcome("provider_error"), outcome("server_error")), (2, 0));
        assert_eq!(text.matches("gatehouse_sign_ins_total{").count(), SIGN_IN_OUTCOMES, "a fixed set of series");
    }
}
