//! Hostile clients on raw sockets (slowloris): half-sent headers, half-sent bodies, idle keep-alive connections and
//! floods of connections are cut off on both listeners, while well-behaved clients keep being served.

use std::time::Duration;

use gatehouse_testkit::{Backend, TEST_ADMIN_KEY, TestServer, both_backends};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Far above the test timeouts below, far below the server defaults: a connection still open after this was
/// never going to be closed.
const CLOSE_DEADLINE: Duration = Duration::from_secs(3);

fn with_small_timeouts(config: &mut gatehouse_core::config::Config) {
    config.server.timeouts.read_header = gatehouse_core::duration::GoDuration::from_millis(300);
    config.server.timeouts.request = gatehouse_core::duration::GoDuration::from_millis(500);
}

/// Both listeners' `host:port`.
fn listeners(server: &TestServer) -> [String; 2] {
    let admin = server.admin_url.as_deref().expect("the admin API is on");
    [&server.base_url, admin].map(|url| url.trim_start_matches("http://").to_owned())
}

async fn connect(address: &str, sent: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(sent.as_bytes()).await.expect("send");
    stream
}

/// Everything the server sends until it closes the connection; fails if it keeps it open.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    match tokio::time::timeout(CLOSE_DEADLINE, stream.read_to_end(&mut received)).await {
        Ok(Ok(_)) => {}
        // A reset also closes the connection.
        Ok(Err(error)) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}"),
        Err(_) => panic!("the server kept the connection open; it sent {:?}", String::from_utf8_lossy(&received)),
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// A fresh client (no pooled connection), so each request opens its own.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client")
}

/// Whether a normal client gets the listener's page at `/` (the login page, or the admin console).
async fn alive(address: &str) -> bool {
    let response = fresh_client().get(format!("http://{address}/")).send().await;
    response.is_ok_and(|response| response.status().is_success())
}

async fn half_sent_headers_are_cut_off_while_others_are_served(backend: Backend) {
    let server = TestServer::start(backend, with_small_timeouts).await;
    for address in listeners(&server) {
        let mut silent = connect(&address, "").await;
        let mut slow = connect(&address, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await;
        assert!(alive(&address).await, "a normal client on {address} is served meanwhile");
        read_until_closed(&mut slow).await;
        read_until_closed(&mut silent).await;
    }
}

async fn half_sent_body_is_cut_off(backend: Backend) {
    let server = TestServer::start(backend, with_small_timeouts).await;
    let [public, admin] = listeners(&server);
    let requests = [
        (public, "POST /sessions/validate HTTP/1.1\r\n".to_owned()),
        (
            admin,
            format!(
                "POST /identity-providers/microsoft/secrets HTTP/1.1\r\nAuthorization: Bearer {TEST_ADMIN_KEY}\r\n"
            ),
        ),
    ];
    for (address, head) in requests {
        let sent =
            format!("{head}Host: {address}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"val");
        let mut stream = connect(&address, &sent).await;
        let answer = read_until_closed(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{address}: {answer}");
        assert!(answer.contains(r#"{"code":408,"#), "Hanko's error shape: {answer}");
    }
}

async fn idle_keep_alive_connections_are_closed(backend: Backend) {
    let server = TestServer::start(backend, with_small_timeouts).await;
    for address in listeners(&server) {
        let mut stream = connect(&address, &format!("GET / HTTP/1.1\r\nHost: {address}\r\n\r\n")).await;
        let answer = read_until_closed(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "answered before the idle connection was closed: {answer}");
    }
}

async fn connections_over_the_cap_are_closed(backend: Backend) {
    const CAP: usize = 3;
    let server = TestServer::start(backend, |config| config.server.max_connections = Some(CAP as u32)).await;
    for address in listeners(&server) {
        // Half-sent headers hold their connections: the default header timeout is far longer than this test.
        let mut holders = Vec::new();
        for _ in 0..CAP {
            holders.push(connect(&address, "GET / HTTP/1.1\r\n").await);
        }
        for _ in 0..2 {
            let mut extra = connect(&address, "").await;
            assert_eq!(read_until_closed(&mut extra).await, "", "an extra connection gets no answer");
        }
        assert!(!alive(&address).await, "{address} is full");
        drop(holders);
        let reopened = async {
            while !alive(&address).await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(CLOSE_DEADLINE, reopened).await.expect("served again once below the cap");
    }
}

both_backends!(
    half_sent_headers_are_cut_off_while_others_are_served,
    half_sent_body_is_cut_off,
    idle_keep_alive_connections_are_closed,
    connections_over_the_cap_are_closed,
);
