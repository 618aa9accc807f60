//! A TCP proxy that injects network faults between a client under test and its server.
//!
//! [`FaultProxy`] listens on a free port of 127.0.0.1 and relays every connection to an
//! upstream `(host, port)`, byte for byte, until told otherwise:
//!
//! - [`cut`](FaultProxy::cut) closes every current connection at once, on both sides, with a
//!   reset (as a crashed middlebox or a rebooted NAT would); new connections are relayed again.
//! - [`blackhole`](FaultProxy::blackhole) is a network partition: nothing is read and nothing is
//!   forwarded in either direction, new connections are accepted but not passed upstream, and
//!   a side that closes is not noticed by the other. The kernels keep acknowledging what fits in
//!   their buffers, so neither side gets an error: only its own timeouts can tell. When the
//!   partition ends, held bytes flow again (as TCP retransmission would deliver them) and a
//!   close that happened meanwhile reaches the other side.
//! - [`delay`](FaultProxy::delay) adds a fixed latency before each chunk is forwarded.
//! - [`refuse`](FaultProxy::refuse) closes new connections right after accepting them (with a
//!   reset), while existing ones keep working.
//!
//! The proxy runs on its own thread with its own Tokio runtime, so it keeps relaying while the
//! test blocks (waiting for a child process, sleeping) or runs a current-thread runtime.
//! Dropping it stops the thread and closes every connection.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::database::TestDatabase;
use crate::error::{Error, Result};

/// Bytes read from one side before they are forwarded to the other.
const CHUNK: usize = 16 * 1024;

/// A fault-injecting TCP proxy on 127.0.0.1 (see the module documentation).
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

/// The controls, shared by the accept loop and every connection.
#[derive(Debug)]
struct Shared {
    upstream: (String, u16),
    /// True while connections are refused.
    refuse: watch::Sender<bool>,
    /// True while the network is partitioned.
    blackhole: watch::Sender<bool>,
    /// Incremented by every cut; connections end when it changes.
    cut: watch::Sender<u64>,
    delay_us: AtomicU64,
    relayed: AtomicU64,
    refused: AtomicU64,
    active: AtomicUsize,
}

impl FaultProxy {
    /// Starts a proxy to `host:port` on a free port of 127.0.0.1.
    pub fn start(host: &str, port: u16) -> Result<FaultProxy> {
        let listener =
            StdListener::bind("127.0.0.1:0").map_err(Error::io("bind the proxy to 127.0.0.1:0"))?;
        listener
            .set_nonblocking(true)
            .map_err(Error::io("make the proxy's listener non-blocking"))?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("read the proxy's address"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::io("start the proxy's runtime"))?;
        let shared = Arc::new(Shared {
            upstream: (host.to_owned(), port),
            refuse: watch::Sender::new(false),
            blackhole: watch::Sender::new(false),
            cut: watch::Sender::new(0),
            delay_us: AtomicU64::new(0),
            relayed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            active: AtomicUsize::new(0),
        });
        let (shutdown, stop) = watch::channel(false);
        let listener = {
            // Registering the socket needs the runtime's reactor.
            let _guard = runtime.enter();
            TcpListener::from_std(listener).map_err(Error::io("register the proxy's listener"))?
        };
        let accept_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sluice-testkit-proxy-{}", addr.port()))
            .spawn(move || runtime.block_on(accept_loop(listener, accept_shared, stop)))
            .map_err(Error::io("spawn the proxy's thread"))?;
        Ok(FaultProxy {
            addr,
            shared,
            shutdown,
            thread: Some(thread),
        })
    }

    /// A proxy in front of `db`'s server.
    pub fn to(db: &TestDatabase) -> Result<FaultProxy> {
        FaultProxy::start(db.host(), db.port())
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The host clients connect to (`127.0.0.1`).
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `db`'s URL (the trusted superuser) through this proxy.
    pub fn url(&self, db: &TestDatabase) -> String {
        crate::database::url(self.host(), self.port(), "postgres", None, db.name())
    }

    /// Closes every current connection at once, with a reset to both sides. New connections
    /// are relayed as before.
    pub fn cut(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// Starts (`true`) or ends (`false`) a network partition: nothing passes in either
    /// direction while it lasts, and nothing is lost when it ends.
    pub fn blackhole(&self, on: bool) {
        self.shared.blackhole.send_replace(on);
    }

    /// Adds `latency` before each chunk is forwarded, in both directions (zero: none).
    pub fn delay(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.shared.delay_us.store(us, Ordering::Relaxed);
    }

    /// Closes new connections as soon as they are accepted (`true`), or relays them again.
    pub fn refuse(&self, on: bool) {
        self.shared.refuse.send_replace(on);
    }

    /// Connections relayed (accepted and not refused) since the proxy started.
    pub fn connections(&self) -> u64 {
        self.shared.relayed.load(Ordering::Relaxed)
    }

    /// Connections closed at once by [`refuse`](Self::refuse) since the proxy started.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Connections open now (including those held by a partition before reaching upstream).
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(thread) = self.thread.take() {
            // The runtime drops every connection task as the thread ends.
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            a = listener.accept() => a,
        };
        let Ok((client, _)) = accepted else {
            // Out of descriptors or an aborted handshake: keep serving the others.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if *shared.refuse.borrow() {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            reset(&client);
            continue;
        }
        shared.relayed.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(client, shared.clone()));
    }
}

/// Counts a connection as active while it lives.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    shared.active.fetch_add(1, Ordering::Relaxed);
    let _active = Active(shared.clone());
    // Subscribing marks the current generation as seen: only a later cut ends this one.
    let mut cut = shared.cut.subscribe();
    let mut partition = shared.blackhole.subscribe();
    let (host, port) = &shared.upstream;
    // In a partition not even the connection attempt gets through.
    let upstream = tokio::select! {
        () = cut_signal(&mut cut) => None,
        s = async {
            wait_open(&mut partition).await;
            TcpStream::connect((host.as_str(), *port)).await
        } => s.ok(),
    };
    let Some(mut upstream) = upstream else {
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let was_cut = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        tokio::select! {
            () = cut_signal(&mut cut) => true,
            _ = async {
                tokio::try_join!(
                    pump(client_read, upstream_write, &shared),
                    pump(upstream_read, client_write, &shared),
                )
            } => false,
        }
    };
    if was_cut {
        reset(&client);
        reset(&upstream);
    }
}

/// Copies `from` to `to` chunk by chunk, obeying the partition and the delay; on end of file
/// shuts down `to`'s sending side, so a close reaches the other side (outside a partition).
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    shared: &Shared,
) -> std::io::Result<()> {
    let mut partition = shared.blackhole.subscribe();
    let mut buf = vec![0u8; CHUNK];
    loop {
        // A partition stops reading, so the sender's buffers fill as with a real one.
        wait_open(&mut partition).await;
        let n = from.read(&mut buf).await?;
        let delay = Duration::from_micros(shared.delay_us.load(Ordering::Relaxed));
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        // What was read just before a partition began waits for its end.
        wait_open(&mut partition).await;
        if n == 0 {
            to.shutdown().await?;
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
    }
}

/// Returns once no partition is on.
async fn wait_open(partition: &mut watch::Receiver<bool>) {
    // Fails only when the proxy is being dropped, which drops this task too.
    let _ = partition.wait_for(|on| !*on).await;
}

/// Returns on the next cut (never, once the proxy is being dropped).
async fn cut_signal(cut: &mut watch::Receiver<u64>) {
    if cut.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Makes the socket's close a reset (`SO_LINGER` 0): the peer sees the connection cut, not
/// ended.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// A peer on 127.0.0.1 that accepts connections and never answers (a hung server, or a
/// partitioned network behind a proxy). Returns its port; it lives until the task is dropped
/// with the runtime.
pub async fn silent_peer() -> std::io::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    Ok(port)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// How long a test waits for bytes that should arrive.
    const ARRIVES: Duration = Duration::from_secs(10);
    /// How long a test waits to see that bytes do not arrive.
    const HELD: Duration = Duration::from_millis(500);

    /// An echo server on 127.0.0.1: its port and the number of connections it accepted.
    async fn echo_server() -> (u16, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let port = listener.local_addr().expect("echo address").port();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        (port, accepted)
    }

    async fn connect(proxy: &FaultProxy) -> TcpStream {
        TcpStream::connect(proxy.addr()).await.expect("connect")
    }

    /// Reads exactly `n` bytes within [`ARRIVES`].
    async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        tokio::time::timeout(ARRIVES, s.read_exact(&mut buf))
            .await
            .expect("the bytes arrive in time")
            .expect("read");
        buf
    }

    async fn round_trip(s: &mut TcpStream, text: &str) {
        s.write_all(text.as_bytes()).await.expect("write");
        assert_eq!(read_n(s, text.len()).await, text.as_bytes());
    }

    /// Whether the connection ends (end of file or reset) within [`ARRIVES`], reading nothing.
    async fn ends(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 16];
        match tokio::time::timeout(ARRIVES, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) | Err(_) => false,
        }
    }

    /// Whether nothing arrives for [`HELD`].
    async fn silent(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 16];
        tokio::time::timeout(HELD, s.read(&mut buf)).await.is_err()
    }

    #[tokio::test]
    async fn relays_both_ways_and_counts() {
        let (port, accepted) = echo_server().await;
        let proxy = FaultProxy::start("127.0.0.1", port).expect("proxy");
        let mut a = connect(&proxy).await;
        round_trip(&mut a, "hello through the proxy").await;
        // More than one chunk, both ways.
        let big: String = "0123456789abcdef".repeat(CHUNK / 8);
        round_trip(&mut a, &big).await;
        let mut b = connect(&proxy).await;
        round_trip(&mut b, "second").await;
        assert_eq!(proxy.connections(), 2);
        assert_eq!(proxy.active(), 2);
        assert_eq!(accepted.load(Ordering::Relaxed), 2);
        // A client's close reaches upstream, whose close comes back.
        a.shutdown().await.expect("shutdown");
        assert!(ends(&mut a).await);
        drop(a);
        let deadline = Instant::now() + ARRIVES;
        while proxy.active() != 1 {
            assert!(Instant::now() < deadline, "the closed connection lingers");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn cut_closes_current_connections_and_relays_new_ones() {
        let (port, _) = echo_server().await;
        let proxy = FaultProxy::start("127.0.0.1", port).expect("proxy");
        let mut a = connect(&proxy).await;
        let mut b = connect(&proxy).await;
        round_trip(&mut a, "a").await;
        round_trip(&mut b, "b").await;
        proxy.cut();
        assert!(ends(&mut a).await, "a was not cut");
        assert!(ends(&mut b).await, "b was not cut");
        let mut c = connect(&proxy).await;
        round_trip(&mut c, "after the cut").await;
        assert_eq!(proxy.connections(), 3);
    }

    #[tokio::test]
    async fn blackhole_holds_everything_until_it_ends() {
        let (port, accepted) = echo_server().await;
        let proxy = FaultProxy::start("127.0.0.1", port).expect("proxy");
        let mut a = connect(&proxy).await;
        round_trip(&mut a, "before").await;
        proxy.blackhole(true);
        a.write_all(b"during")
            .await
            .expect("write into the partition");
        assert!(silent(&mut a).await, "bytes crossed the partition");
        // A new connection is accepted but does not reach upstream.
        let mut b = connect(&proxy).await;
        b.write_all(b"new").await.expect("write");
        assert!(
            silent(&mut b).await,
            "a new connection crossed the partition"
        );
        assert_eq!(accepted.load(Ordering::Relaxed), 1);
        proxy.blackhole(false);
        assert_eq!(read_n(&mut a, 6).await, b"during");
        assert_eq!(read_n(&mut b, 3).await, b"new");
        assert_eq!(accepted.load(Ordering::Relaxed), 2);
        round_trip(&mut a, "after").await;
    }

    #[tokio::test]
    async fn a_close_during_a_blackhole_arrives_after_it() {
        let (port, _) = echo_server().await;
        let proxy = FaultProxy::start("127.0.0.1", port).expect("proxy");
        let mut a = connect(&proxy).await;
        round_trip(&mut a, "x").await;
        proxy.blackhole(true);
        a.shutdown().await.expect("shutdown");
        assert!(silent(&mut a).await, "the close crossed the partition");
        proxy.blackhole(false);
        assert!(ends(&mut a).await);
    }

    #[tokio::test]
    async fn delay_adds_latency_to_each_chunk() {
        let (port, _) = echo_server().await;
        let proxy = FaultProxy::start("127.0.0.1", port).expect("proxy");
        let mut a = connect(&proxy).await;
        round_trip(&mut a, "warm").await;
        let latency = Duration::from_millis(200);
        proxy.delay(latency);
        let started = Instant::now();
        round_trip(&mut a, "slow").await;
        // At least one delayed chunk each way.
        assert!(started.elapsed() >= 2 * latency, "{:?}", started.elapsed());
        proxy.delay(Duration::ZERO);
        round_trip(&mut a, "fast again").await;
    }

    #[tokio::test]
    async fn refuse_closes_new_connections_only() {
        let (port, accepted) = echo_server().await;
        let proxy = FaultProxy::start("127.0.0.1", port).expect("proxy");
        let mut a = connect(&proxy).await;
        round_trip(&mut a, "a").await;
        proxy.refuse(true);
        // The reset may come before `connect` returns, which then fails with it.
        if let Ok(mut b) = TcpStream::connect(proxy.addr()).await {
            assert!(ends(&mut b).await, "a refused connection stayed open");
        }
        assert_eq!(proxy.refused(), 1);
        round_trip(&mut a, "still relayed").await;
        proxy.refuse(false);
        let mut c = connect(&proxy).await;
        round_trip(&mut c, "c").await;
        assert_eq!(accepted.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_its_connections() {
        let (port, _) = echo_server().await;
        let proxy = FaultProxy::start("127.0.0.1", port).expect("proxy");
        let addr = proxy.addr();
        let mut a = connect(&proxy).await;
        round_trip(&mut a, "a").await;
        drop(proxy);
        assert!(ends(&mut a).await);
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    }
}
