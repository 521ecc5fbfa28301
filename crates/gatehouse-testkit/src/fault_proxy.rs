//! A fault-injecting TCP proxy: put it between Gatehouse and a dependency (PostgreSQL, the fake Entra ID) and
//! break the network on command, the way an outage, a restart or a partition would, without touching the code
//! under test.
//!
//! It listens on `127.0.0.1:0` and forwards every connection to its target. [`FaultProxy::cut`] closes every
//! connection and refuses new ones, [`FaultProxy::reset`] kills every open connection with a TCP reset (a
//! database restart), [`FaultProxy::blackhole`] swallows bytes without an answer (a partition),
//! [`FaultProxy::delay`] and [`FaultProxy::slow_drip`] slow the bytes down, and [`FaultProxy::restore`] ends the
//! fault.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

/// What the proxy does to the bytes it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forwards every byte as it comes.
    None,
    /// Refuses connections: each new one is reset as soon as it is accepted.
    Cut,
    /// Accepts connections and takes their bytes but forwards nothing, either way, until the fault ends.
    Blackhole,
    /// Holds every chunk this long before forwarding it.
    Delay(Duration),
    /// Forwards `bytes` at a time, one chunk every `every`.
    SlowDrip { bytes: usize, every: Duration },
}

/// How open connections end when the proxy ends them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// An orderly close (FIN), as when a server shuts down.
    Close,
    /// A TCP reset (RST), as when a server dies or a firewall drops its state.
    Reset,
}

#[derive(Clone, Copy, Debug)]
struct Control {
    fault: Fault,
    /// Bumped to end every connection opened before; `ending` says how.
    generation: u64,
    ending: Ending,
}

/// A TCP proxy on a port of its own that forwards to one target and injects [`Fault`]s. Stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    control: watch::Sender<Control>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding `127.0.0.1:<some port>` to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fault proxy");
        let address = listener.local_addr().expect("the fault proxy's address");
        let (control, _) = watch::channel(Control { fault: Fault::None, generation: 0, ending: Ending::Close });
        let accepted = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(listener, target, control.clone(), accepted.clone()));
        Self { address, control, accepted, task }
    }

    /// Starts forwarding to the host and port of `url` (a database URL, say); [`FaultProxy::route`] gives the URL
    /// to hand the client instead.
    pub async fn start_for(url: &str) -> Self {
        let parsed = url::Url::parse(url).expect("a URL to put the fault proxy in front of");
        let host = parsed.host_str().expect("a URL with a host");
        let port = parsed.port_or_known_default().expect("a URL with a port");
        let target = tokio::net::lookup_host((host, port)).await.ok().and_then(|mut found| found.next());
        Self::start(target.expect("the URL's host resolves")).await
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `url` with its host and port replaced by the proxy's, so that a client of `url` goes through the proxy.
    pub fn route(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("a URL to route through the fault proxy");
        url.set_ip_host(self.address.ip()).expect("a URL with a host");
        url.set_port(Some(self.address.port())).expect("a URL with a port");
        url.to_string()
    }

    /// How many connections the proxy has accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    pub fn fault(&self) -> Fault {
        self.control.borrow().fault
    }

    /// Closes every open connection and refuses new ones until [`FaultProxy::restore`].
    pub fn cut(&self) {
        self.end_connections(Fault::Cut, Ending::Close);
    }

    /// Resets every open connection (RST); new connections go through as before.
    pub fn reset(&self) {
        let fault = self.fault();
        self.end_connections(fault, Ending::Reset);
    }

    /// Swallows every byte, on open connections and new ones, until the fault ends.
    pub fn blackhole(&self) {
        self.set(Fault::Blackhole);
    }

    /// Holds every chunk `delay` before forwarding it.
    pub fn delay(&self, delay: Duration) {
        self.set(Fault::Delay(delay));
    }

    /// Forwards `bytes` at a time, one chunk every `every`.
    pub fn slow_drip(&self, bytes: usize, every: Duration) {
        self.set(Fault::SlowDrip { bytes: bytes.max(1), every });
    }

    /// Forwards normally again. Connections held by a blackhole end (they never reached the target).
    pub fn restore(&self) {
        if self.fault() == Fault::Blackhole {
            self.end_connections(Fault::None, Ending::Close);
        } else {
            self.set(Fault::None);
        }
    }

    fn set(&self, fault: Fault) {
        self.control.send_modify(|control| control.fault = fault);
    }

    fn end_connections(&self, fault: Fault, ending: Ending) {
        self.control.send_modify(|control| {
            control.fault = fault;
            control.generation += 1;
            control.ending = ending;
        });
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Open connections end too: their tasks see the control channel close.
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    control: watch::Sender<Control>,
    accepted: Arc<AtomicUsize>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        accepted.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(carry(client, target, control.subscribe()));
    }
}

/// Carries one connection until either side closes it or the proxy ends it.
async fn carry(client: TcpStream, target: SocketAddr, mut control: watch::Receiver<Control>) {
    let Control { fault, generation, .. } = *control.borrow_and_update();
    let (inbound, outbound) = (control.clone(), control.clone());
    let ended = async {
        match control.wait_for(|now| now.generation != generation).await {
            Ok(now) => now.ending,
            // The proxy is gone.
            Err(_) => Ending::Close,
        }
    };
    match fault {
        Fault::Cut => end(&client, Ending::Reset),
        // A partitioned network: nothing reaches the target, not even the connection.
        Fault::Blackhole => {
            let mut sink = client;
            let ending = tokio::select! {
                ending = ended => ending,
                () = swallow(&mut sink) => Ending::Close,
            };
            end(&sink, ending);
        }
        Fault::None | Fault::Delay(_) | Fault::SlowDrip { .. } => {
            let Ok(mut upstream) = TcpStream::connect(target).await else {
                return end(&client, Ending::Reset);
            };
            let mut client = client;
            let ending = {
                let (client_read, client_write) = client.split();
                let (upstream_read, upstream_write) = upstream.split();
                let both_ways = async {
                    let _ = tokio::join!(
                        pump(client_read, upstream_write, inbound),
                        pump(upstream_read, client_write, outbound),
                    );
                };
                tokio::select! {
                    ending = ended => ending,
                    () = both_ways => Ending::Close,
                }
            };
            end(&client, ending);
            end(&upstream, ending);
        }
    }
}

/// Reads and drops everything until the peer closes.
async fn swallow(stream: &mut TcpStream) {
    let mut buffer = [0; 4096];
    while matches!(stream.read(&mut buffer).await, Ok(read) if read > 0) {}
}

/// Copies `from` to `to`, applying the fault in force when each chunk arrives; closes `to` after `from` ends.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    control: watch::Receiver<Control>,
) -> std::io::Result<()> {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            return to.shutdown().await;
        }
        let chunk = &buffer[..read];
        let fault = control.borrow().fault;
        match fault {
            Fault::None => to.write_all(chunk).await?,
            Fault::Delay(delay) => {
                tokio::time::sleep(delay).await;
                to.write_all(chunk).await?;
            }
            Fault::SlowDrip { bytes, every } => {
                for piece in chunk.chunks(bytes) {
                    tokio::time::sleep(every).await;
                    to.write_all(piece).await?;
                    to.flush().await?;
                }
            }
            // Lost on the way.
            Fault::Blackhole | Fault::Cut => {}
        }
    }
}

/// Ends a connection: a reset is an RST on close instead of a FIN.
fn end(stream: &TcpStream, ending: Ending) {
    if ending == Ending::Reset {
        let _ = stream.set_zero_linger();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A server that echoes every byte back.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        address
    }

    /// Sends `text` and waits up to `within` for it to come back; the error says what happened instead.
    async fn round_trip(stream: &mut TcpStream, text: &[u8], within: Duration) -> Result<(), String> {
        stream.write_all(text).await.map_err(|error| format!("write: {error}"))?;
        let mut answer = vec![0; text.len()];
        match tokio::time::timeout(within, stream.read_exact(&mut answer)).await {
            Err(_) => Err("no answer".into()),
            Ok(Err(error)) => Err(format!("read: {:?}", error.kind())),
            Ok(Ok(_)) if answer == text => Ok(()),
            Ok(Ok(_)) => Err("garbled".into()),
        }
    }

    const QUICK: Duration = Duration::from_secs(2);

    async fn in_front_of_echo() -> FaultProxy {
        FaultProxy::start(echo().await).await
    }

    async fn connect(proxy: &FaultProxy) -> TcpStream {
        TcpStream::connect(proxy.address()).await.unwrap()
    }

    #[tokio::test]
    async fn forwards_both_ways_until_a_fault() {
        let proxy = in_front_of_echo().await;
        let mut stream = connect(&proxy).await;
        round_trip(&mut stream, b"hello", QUICK).await.unwrap();
        assert_eq!(proxy.accepted(), 1);
        assert_eq!(proxy.route("postgres://u@db.internal:5432/x"), format!("postgres://u@{}/x", proxy.address()));
    }

    #[tokio::test]
    async fn a_cut_closes_open_connections_and_refuses_new_ones_until_restored() {
        let proxy = in_front_of_echo().await;
        let mut open = connect(&proxy).await;
        round_trip(&mut open, b"before", QUICK).await.unwrap();
        proxy.cut();
        assert!(round_trip(&mut open, b"during", QUICK).await.is_err());
        let mut new = connect(&proxy).await;
        assert!(round_trip(&mut new, b"during", QUICK).await.is_err());
        proxy.restore();
        let mut after = connect(&proxy).await;
        round_trip(&mut after, b"after", QUICK).await.unwrap();
    }

    #[tokio::test]
    async fn a_reset_kills_open_connections_with_an_rst_and_lets_new_ones_through() {
        let proxy = in_front_of_echo().await;
        let mut open = connect(&proxy).await;
        round_trip(&mut open, b"before", QUICK).await.unwrap();
        proxy.reset();
        let failure = round_trip(&mut open, b"during", QUICK).await.unwrap_err();
        assert!(failure.contains("ConnectionReset") || failure.contains("UnexpectedEof"), "{failure}");
        let mut new = connect(&proxy).await;
        round_trip(&mut new, b"after", QUICK).await.unwrap();
    }

    #[tokio::test]
    async fn a_blackhole_answers_nothing_and_ends_its_connections_when_restored() {
        let proxy = in_front_of_echo().await;
        let mut open = connect(&proxy).await;
        proxy.blackhole();
        assert_eq!(round_trip(&mut open, b"lost", Duration::from_millis(200)).await, Err("no answer".into()));
        let mut new = connect(&proxy).await;
        assert_eq!(round_trip(&mut new, b"lost", Duration::from_millis(200)).await, Err("no answer".into()));
        proxy.restore();
        let mut ended = [0; 1];
        let read = tokio::time::timeout(QUICK, new.read(&mut ended)).await.expect("the held connection ends");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        let mut after = connect(&proxy).await;
        round_trip(&mut after, b"after", QUICK).await.unwrap();
    }

    #[tokio::test]
    async fn delay_and_slow_drip_slow_the_bytes_down() {
        let proxy = in_front_of_echo().await;
        let mut stream = connect(&proxy).await;
        proxy.delay(Duration::from_millis(100));
        let started = Instant::now();
        round_trip(&mut stream, b"slow", QUICK).await.unwrap();
        // Once on the way there, once on the way back.
        assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
        proxy.slow_drip(2, Duration::from_millis(20));
        let started = Instant::now();
        round_trip(&mut stream, b"dripped!", QUICK).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(80), "{:?}", started.elapsed());
        proxy.restore();
        let started = Instant::now();
        round_trip(&mut stream, b"fast", QUICK).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(100), "{:?}", started.elapsed());
    }
}
