//! The JWKS cache against a key server the test controls, on a manual clock: refresh once a day, refetch for an
//! unknown key id at most once per 30 s, and keep serving cached keys while the provider's JWKS is down.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use gatehouse_core::clock::{ManualClock, Timestamp};
use gatehouse_oidc::jwks::{JwksCache, JwksError, REFRESH_AFTER, UNKNOWN_KID_REFETCH_INTERVAL};
use gatehouse_testkit::fake_entra::{FakeEntra, FakeEntraOptions};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// Serves a JWKS document over plain HTTP/1.1, or 503 while `down`; counts requests.
struct KeyServer {
    url: String,
    down: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
}

impl KeyServer {
    async fn start(document: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/keys", listener.local_addr().unwrap());
        let (down, requests) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (serving_down, counted) = (down.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let answer = if serving_down.load(Ordering::SeqCst) {
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                         connection: close\r\n\r\n{document}",
                        document.len()
                    )
                };
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        Self { url, down, requests }
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn setup() -> (KeyServer, JwksCache, Arc<ManualClock>, String) {
    let entra = FakeEntra::start(FakeEntraOptions::default()).await;
    let server = KeyServer::start(entra.jwks_document().to_string()).await;
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_800_000_000_000)));
    let cache = JwksCache::new(reqwest::Client::new(), server.url.clone(), clock.clone());
    (server, cache, clock, entra.current_kid())
}

#[tokio::test]
async fn keys_are_fetched_once_and_refreshed_daily() {
    let (server, cache, clock, kid) = setup().await;
    for _ in 0..3 {
        assert_eq!(cache.key(&kid).await.unwrap().kid, kid);
    }
    assert_eq!(server.requests(), 1, "cached after the first fetch");
    // A literal day, not the constant: Microsoft's guidance is a daily refresh, and the test pins it.
    const DAY: Duration = Duration::from_secs(24 * 3600);
    clock.advance(DAY - Duration::from_millis(1));
    cache.key(&kid).await.unwrap();
    assert_eq!(server.requests(), 1, "still fresh just before a day has passed");
    clock.advance(Duration::from_millis(1));
    cache.key(&kid).await.unwrap();
    assert_eq!(server.requests(), 2, "refreshed once a day has passed");
    assert_eq!(cache.fetch_count(), server.requests(), "the cache counts its fetches, as the benchmarks read them");
}

/// Only RSA signature keys are used: an encryption key, or a key of another type, is not one Microsoft signs
/// ID tokens with, whatever its `kid`.
#[tokio::test]
async fn only_rsa_signature_keys_are_kept() {
    let entra = FakeEntra::start(FakeEntraOptions::default()).await;
    let mut document = entra.jwks_document();
    let signing = document["keys"][0].clone();
    let mut encryption = signing.clone();
    encryption["kid"] = "encryption-key".into();
    encryption["use"] = "enc".into();
    let mut other_type = signing.clone();
    other_type["kid"] = "other-type-key".into();
    other_type["kty"] = "EC".into();
    document["keys"] = serde_json::json!([encryption, other_type, signing]);
    let server = KeyServer::start(document.to_string()).await;
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_800_000_000_000)));
    let cache = JwksCache::new(reqwest::Client::new(), server.url.clone(), clock);
    assert_eq!(cache.key(&entra.current_kid()).await.unwrap().kid, entra.current_kid());
    for refused in ["encryption-key", "other-type-key"] {
        assert!(matches!(cache.key(refused).await, Err(JwksError::UnknownKey(_))), "{refused}");
    }
}

#[tokio::test]
async fn unknown_key_ids_refetch_at_most_once_per_interval() {
    let (server, cache, clock, kid) = setup().await;
    cache.key(&kid).await.unwrap();
    assert!(matches!(cache.key("made-up-1").await, Err(JwksError::UnknownKey(_))));
    assert_eq!(server.requests(), 2, "an unknown kid refetches once");
    for attempt in 0..5 {
        assert!(matches!(cache.key(&format!("made-up-{attempt}")).await, Err(JwksError::UnknownKey(_))));
    }
    // A literal 30 s, not the constant: the throttle the issue and Microsoft's guidance ask for.
    clock.advance(Duration::from_secs(30) - Duration::from_millis(1));
    assert!(cache.key("made-up-2").await.is_err());
    assert_eq!(server.requests(), 2, "no refetch within the interval, however many made-up kids");
    clock.advance(Duration::from_millis(1));
    assert!(cache.key("made-up-3").await.is_err());
    assert_eq!(server.requests(), 3, "one more once the interval has passed");
    assert_eq!(cache.key(&kid).await.unwrap().kid, kid, "known keys are unaffected");
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn cached_keys_outlive_a_jwks_outage() {
    let (server, cache, clock, kid) = setup().await;
    server.down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert!(matches!(cache.key(&kid).await, Err(JwksError::Fetch(_))), "nothing cached yet: a clean failure");
    }
    server.down.store(false, Ordering::SeqCst);
    cache.key(&kid).await.unwrap();
    server.down.store(true, Ordering::SeqCst);
    clock.advance(REFRESH_AFTER);
    assert_eq!(cache.key(&kid).await.unwrap().kid, kid, "a failed daily refresh keeps the cached keys");
    let during_outage = server.requests();
    assert_eq!(cache.key(&kid).await.unwrap().kid, kid);
    assert_eq!(server.requests(), during_outage, "the refresh is retried later, not by every sign-in");
    server.down.store(false, Ordering::SeqCst);
    clock.advance(UNKNOWN_KID_REFETCH_INTERVAL);
    cache.key(&kid).await.unwrap();
    assert_eq!(server.requests(), during_outage + 1, "and retried once the provider may be back");
    server.down.store(true, Ordering::SeqCst);
    assert!(matches!(cache.key("rolled-over").await, Err(JwksError::Fetch(_))), "a new kid fails as the outage it is");
    let fetched = server.requests();
    clock.advance(UNKNOWN_KID_REFETCH_INTERVAL);
    assert_eq!(cache.key(&kid).await.unwrap().kid, kid);
    assert_eq!(server.requests(), fetched, "a failed fetch for a new kid leaves a fresh key set fresh");
}
