//! A switchable TCP proxy for outage tests: put it between the app and
//! Postgres or S3, then switch it down to cut the service off at once and
//! up to bring it back.
//!
//! Down means: every connection it is relaying is reset on both sides (RST,
//! not a clean FIN, so neither peer waits on it), and each new connection is
//! accepted and reset straight away, so a client sees a fast connection
//! error instead of a hang. The listening port stays the same throughout.
//! Everything runs on tokio tasks that end when the [`Proxy`] is dropped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Whether the proxy relays, and the token its current relays end on.
struct Switch {
    up: bool,
    /// Cancelled (and replaced) when the proxy goes down; a child of `root`.
    relays: CancellationToken,
}

struct Shared {
    switch: Mutex<Switch>,
    /// Cancelled when the proxy is dropped: ends every relay.
    root: CancellationToken,
}

pub struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and relays every connection to `target`
    /// (resolved once, here). Starts up.
    pub async fn start(target: impl ToSocketAddrs) -> Proxy {
        let target = tokio::net::lookup_host(target)
            .await
            .expect("resolve the proxy target")
            .next()
            .expect("the proxy target resolves to an address");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy on port 0");
        let addr = listener.local_addr().unwrap();
        let root = CancellationToken::new();
        let shared = Arc::new(Shared {
            switch: Mutex::new(Switch {
                up: true,
                relays: root.child_token(),
            }),
            root,
        });
        let accept = tokio::spawn(accept_loop(listener, target, shared.clone()));
        Proxy {
            addr,
            target,
            shared,
            accept,
        }
    }

    /// Where clients connect (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address the proxy relays to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// `http://127.0.0.1:<port>`, for HTTP services such as S3.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `url` with its `host:port` replaced by the proxy's (user, path and
    /// query kept): `postgres://u@127.0.0.1:5432/db` → `postgres://u@127.0.0.1:<port>/db`.
    pub fn rewrite_url(&self, url: &str) -> String {
        replace_host_port(url, self.addr)
    }

    pub fn is_up(&self) -> bool {
        self.shared.switch.lock().unwrap().up
    }

    /// Down: resets every relayed connection now and every new one on
    /// arrival. Up: relays new connections again (old ones stay gone).
    pub fn set_up(&self, up: bool) {
        let mut switch = self.shared.switch.lock().unwrap();
        if switch.up && !up {
            switch.relays.cancel();
            switch.relays = self.shared.root.child_token();
        }
        switch.up = up;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.root.cancel();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            // Out of file descriptors or similar: back off briefly.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        // Decided under the lock, so a connection accepted while the proxy
        // goes down either sees `up == false` or holds a token that is cancelled.
        let relay = {
            let switch = shared.switch.lock().unwrap();
            switch.up.then(|| switch.relays.clone())
        };
        match relay {
            Some(token) => {
                tokio::spawn(relay_one(inbound, target, token));
            }
            None => reset(inbound),
        }
    }
}

async fn relay_one(mut inbound: TcpStream, target: SocketAddr, token: CancellationToken) {
    let connected = tokio::select! {
        _ = token.cancelled() => None,
        outbound = TcpStream::connect(target) => outbound.ok(),
    };
    let Some(mut outbound) = connected else {
        reset(inbound);
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    // The copy ends when both directions have finished (or one failed); the
    // streams then close normally.
    let cancelled = tokio::select! {
        _ = token.cancelled() => true,
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
    };
    if cancelled {
        reset(inbound);
        reset(outbound);
    }
}

/// Closes with a TCP reset rather than a FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Replaces the `host:port` of `scheme://[user[:pass]@]host[:port][/path][?query]`.
fn replace_host_port(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("{url:?} has no scheme"));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let userinfo = authority
        .rsplit_once('@')
        .map_or(String::new(), |(user, _)| format!("{user}@"));
    format!("{scheme}://{userinfo}{addr}{tail}")
}
