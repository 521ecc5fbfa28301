//! Shutdown under load (what SIGTERM triggers in the binary): readiness fails first while requests are still
//! served, so that a load balancer drains the instance; then the listener closes and every request in flight
//! finishes.

use std::time::{Duration, Instant};

use gatehouse_core::duration::GoDuration;
use gatehouse_testkit::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const DRAIN: Duration = Duration::from_millis(500);

/// Validates `token` in a loop until a request fails; how many were answered and when the first failed.
async fn load(client: reqwest::Client, url: String, token: String) -> (usize, Instant) {
    let mut answered = 0;
    loop {
        let sent = client.post(&url).json(&json!({ "session_token": token })).send().await;
        match sent {
            Ok(response) if response.status() == StatusCode::OK => answered += 1,
            _ => return (answered, Instant::now()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_fails_readiness_first_and_finishes_every_request_in_flight() {
    let server = TestServer::start(Backend::Sqlite, |config| {
        config.server.timeouts.drain = GoDuration::from_millis(DRAIN.as_millis() as u64)
    })
    .await;
    let user = server.create_user("drain@example.com").await;
    let token = server.issue_session(user).await;
    let (client, ready_url) = (server.client.clone(), server.url("/health/ready"));
    let address = server.base_url.trim_start_matches("http://").to_owned();
    let loads: Vec<_> =
        (0..4).map(|_| tokio::spawn(load(client.clone(), server.url("/sessions/validate"), token.clone()))).collect();
    // A request in flight across the whole shutdown: its body arrives only after the listener has closed.
    let body = json!({ "session_token": token }).to_string();
    let mut in_flight = TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /sessions/validate HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let stop_started = Instant::now();
    let stopping = tokio::spawn(server.stop());
    let mut not_ready = None;
    while not_ready.is_none() {
        let status = client.get(&ready_url).send().await.map(|response| response.status());
        if let Ok(StatusCode::SERVICE_UNAVAILABLE) = status {
            not_ready = Some(stop_started.elapsed());
        }
        assert!(stop_started.elapsed() < DRAIN, "readiness still passes after {:?}", stop_started.elapsed());
    }
    let answered: Vec<_> = futures_all(loads).await;
    let first_failure = answered.iter().map(|(_, at)| at.duration_since(stop_started)).min().unwrap();
    assert!(first_failure >= DRAIN, "a request failed {first_failure:?} into the shutdown, during the drain");

    in_flight.write_all(body.as_bytes()).await.unwrap();
    let mut response = String::new();
    in_flight.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "the request in flight was cut: {response}");
    assert!(response.contains(r#""is_valid":true"#), "{response}");
    tokio::time::timeout(Duration::from_secs(5), stopping).await.expect("the server stops").unwrap();
    println!(
        "FIGURE shutdown under load (4 clients validating, drain {} ms): ready=503 {} ms after the signal; {} \
         validations answered, none failed before the drain ended (first refused {} ms after the signal); the \
         request in flight across the close finished 200",
        DRAIN.as_millis(),
        not_ready.unwrap().as_millis(),
        answered.iter().map(|(count, _)| count).sum::<usize>(),
        first_failure.as_millis()
    );
}

async fn futures_all<T: Send + 'static>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut done = Vec::with_capacity(tasks.len());
    for task in tasks {
        done.push(task.await.unwrap());
    }
    done
}
