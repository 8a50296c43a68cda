//! Two lanes for HTTP connections, so that anonymous traffic cannot take
//! the CPU that callers with a token need.
//!
//! Rate limits ([`crate::admission`]) bound what one address may ask for,
//! but a flood from many addresses still has to be read, parsed and
//! refused, and on a shared async runtime that work queues in front of
//! issuance: `divoc bench abuse` measured issuance p99 tripling under a
//! flood of refused requests (docs/PERFORMANCE.md, § Holding under abuse).
//! Tokio has no task priorities, so the priority is given to threads:
//!
//! - the **staff lane** is the server's own runtime, at normal priority;
//! - the **public lane** is a second runtime whose threads run at a lower
//!   CPU priority (`SCHED_IDLE` by default, or a nice value; sched(7)), so
//!   the kernel gives a busy core to the staff lane first and the public
//!   lane takes what is left. Measured with `divoc bench abuse`, issuance
//!   under a flood of malformed requests kept 90–91 % of its rate with the
//!   lane at `SCHED_IDLE`, 85 % at nice 19 and 78 % at nice 10: a nice
//!   value still lets a waking issuance thread wait for a public one.
//!
//! A connection is placed once, when it is accepted, by its first
//! request's head, read with `MSG_PEEK` so nothing is consumed: a bearer
//! token the server accepts puts it in the staff lane, anything else
//! (no token, a bad one, a head that does not arrive within
//! [`LaneSettings::classify_wait`]) in the public lane. Later requests on
//! a keep-alive connection stay in its lane; rate limits and role checks
//! still apply to every request as before.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::auth::TokenTable;

/// How the public lane's threads are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// No public lane: every connection is served by the server's runtime
    /// (as before lanes existed).
    Same,
    /// `SCHED_OTHER` at this nice value (1–19): the lane gets a share of a
    /// contended core in proportion to its weight (nice 10 ≈ a tenth).
    Nice(u8),
    /// `SCHED_IDLE`: the lane runs only on a core nothing else wants, and
    /// a waking normal thread takes the core at once. Public requests then
    /// wait while callers with tokens keep every core busy.
    Idle,
}

/// A [`Priority`] that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "public lane priority `{0}`: expected \"same\", \"idle\" or \"nice-N\" with N from 1 to 19"
)]
pub struct PriorityError(String);

impl FromStr for Priority {
    type Err = PriorityError;

    fn from_str(s: &str) -> Result<Priority, PriorityError> {
        match s {
            "same" => Ok(Priority::Same),
            "idle" => Ok(Priority::Idle),
            _ => s
                .strip_prefix("nice-")
                .and_then(|n| n.parse::<u8>().ok())
                .filter(|n| (1..=19).contains(n))
                .map(Priority::Nice)
                .ok_or_else(|| PriorityError(s.to_owned())),
        }
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Priority::Same => f.write_str("same"),
            Priority::Nice(n) => write!(f, "nice-{n}"),
            Priority::Idle => f.write_str("idle"),
        }
    }
}

impl serde::Serialize for Priority {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Priority, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The lanes' settings.
#[derive(Debug, Clone)]
pub struct LaneSettings {
    /// Worker threads of the public lane's runtime.
    pub public_threads: usize,
    /// Most blocking threads the public lane's runtime may start.
    pub public_blocking_threads: usize,
    /// How the public lane's threads are scheduled.
    pub public_priority: Priority,
    /// How long a new connection's first request head may take to arrive
    /// before the connection is placed in the public lane without it.
    pub classify_wait: Duration,
}

impl Default for LaneSettings {
    fn default() -> Self {
        LaneSettings {
            public_threads: 2,
            public_blocking_threads: 8,
            public_priority: Priority::Idle,
            classify_wait: Duration::from_millis(500),
        }
    }
}

/// The lane a connection is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The server's runtime, at normal priority.
    Staff,
    /// The lower-priority runtime.
    Public,
}

impl Lane {
    fn name(self) -> &'static str {
        match self {
            Lane::Staff => "staff",
            Lane::Public => "public",
        }
    }
}

/// What a connection's first bytes say about it.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// A complete head with this bearer token.
    Token(String),
    /// A complete head without one, or bytes that are not HTTP/1.
    Anonymous,
    /// Not all of the head has arrived yet.
    Partial,
}

/// The most of a first request's head looked at; a longer head places the
/// connection in the public lane.
const HEAD_LIMIT: usize = 8 * 1024;

/// Reads the head at the start of `bytes` (RFC 9110 § 11.6.2: the
/// `Authorization` header, scheme `Bearer` in any case, RFC 6750 § 2.1).
fn read_head(bytes: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Anonymous,
    }
    let token = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("authorization"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    match token {
        Some(t) => Head::Token(t.to_owned()),
        None => Head::Anonymous,
    }
}

/// The two lanes: the public lane's runtime (none with
/// [`Priority::Same`]) and what placing a connection needs.
pub struct Lanes {
    public: Option<tokio::runtime::Runtime>,
    tokens: Arc<TokenTable>,
    classify_wait: Duration,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("public", &self.public.is_some())
            .finish_non_exhaustive()
    }
}

impl Lanes {
    /// Starts the public lane's runtime.
    pub fn start(settings: &LaneSettings, tokens: Arc<TokenTable>) -> std::io::Result<Lanes> {
        let public = match settings.public_priority {
            Priority::Same => None,
            priority => Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(settings.public_threads.max(1))
                    .max_blocking_threads(settings.public_blocking_threads.max(1))
                    .thread_name("divoc-public")
                    // Every thread of the runtime, the blocking ones too, so
                    // that work a public request hands off keeps its place.
                    .on_thread_start(move || lower_priority(priority))
                    .enable_all()
                    .build()?,
            ),
        };
        Ok(Lanes {
            public,
            tokens,
            classify_wait: settings.classify_wait,
        })
    }

    /// Serves `app` on `listener` until `shutdown` completes, then lets
    /// the open connections finish their requests (graceful shutdown).
    /// Each request carries the peer's address as
    /// `ConnectInfo<SocketAddr>`.
    pub async fn serve(
        self,
        listener: TcpListener,
        app: Router,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        // Dropping the receiver tells every connection to finish; the
        // server waits until every connection has dropped its `done`.
        let (stop_tx, stop_rx) = watch::channel(());
        tokio::spawn(async move {
            shutdown.await;
            drop(stop_rx);
        });
        let (done_tx, done_rx) = watch::channel(());
        let public = self.public.as_ref().map(|rt| rt.handle().clone());
        let lanes = Arc::new(Placing {
            tokens: self.tokens.clone(),
            classify_wait: self.classify_wait,
        });
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        accept_failed(e).await;
                        continue;
                    }
                },
                _ = stop_tx.closed() => break,
            };
            let app = app.clone();
            let stop = stop_tx.clone();
            let done = done_rx.clone();
            let public = public.clone();
            let lanes = lanes.clone();
            tokio::spawn(async move {
                let lane = match public {
                    Some(_) => lanes.place(&stream).await,
                    None => Lane::Staff,
                };
                metrics::counter!("divoc_lane_connections_total", "lane" => lane.name())
                    .increment(1);
                match (lane, public) {
                    (Lane::Public, Some(public)) => {
                        // A socket is registered with one runtime's I/O
                        // driver: move it out and register it again there.
                        let std = match stream.into_std() {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::debug!(error = %e, "connection lost while placed");
                                return;
                            }
                        };
                        public.spawn(async move {
                            match TcpStream::from_std(std) {
                                Ok(stream) => connection(stream, peer, app, stop, done).await,
                                Err(e) => tracing::warn!(error = %e, "cannot move a connection"),
                            }
                        });
                    }
                    _ => connection(stream, peer, app, stop, done).await,
                }
            });
        }
        drop(listener);
        drop(done_rx);
        done_tx.closed().await;
        if let Some(rt) = self.public {
            // Blocking here is not allowed; what is left (tasks a request
            // spawned) is dropped with the runtime.
            rt.shutdown_background();
        }
    }
}

struct Placing {
    tokens: Arc<TokenTable>,
    classify_wait: Duration,
}

impl Placing {
    /// The lane of a new connection, from its first request's head.
    async fn place(&self, stream: &TcpStream) -> Lane {
        let deadline = Instant::now() + self.classify_wait;
        let mut buf = vec![0u8; HEAD_LIMIT];
        let token = loop {
            let seen = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => n,
                // Closed, failed or silent: hyper will find out.
                _ => return Lane::Public,
            };
            match read_head(&buf[..seen]) {
                Head::Token(t) => break t,
                Head::Anonymous => return Lane::Public,
                Head::Partial if seen == buf.len() => return Lane::Public,
                Head::Partial => {
                    // Peeking does not consume, so the socket stays
                    // readable: wait a little for the rest instead.
                    if tokio::time::timeout_at(
                        deadline,
                        tokio::time::sleep(Duration::from_millis(2)),
                    )
                    .await
                    .is_err()
                    {
                        return Lane::Public;
                    }
                }
            }
        };
        if self.tokens.configured(&token).is_some() {
            return Lane::Staff;
        }
        if !self.tokens.has_dynamic() {
            return Lane::Public;
        }
        // A stored token or a JWT: the check may read the database.
        let tokens = self.tokens.clone();
        let check = tokio::task::spawn_blocking(move || tokens.dynamic(&token).is_some());
        match tokio::time::timeout_at(deadline, check).await {
            Ok(Ok(true)) => Lane::Staff,
            _ => Lane::Public,
        }
    }
}

/// Serves one connection (HTTP/1.1, as `axum::serve` does without its
/// `http2` feature) until it closes, or finishes its request in flight
/// once `stop` is closed.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    stop: watch::Sender<()>,
    done: watch::Receiver<()>,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            Ok::<_, Infallible>(
                app.oneshot(request.map(axum::body::Body::new))
                    .await
                    .unwrap_or_else(|e| match e {}),
            )
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut stopping = std::pin::pin!(stop.closed());
    let mut told = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::trace!(error = %e, "connection ended");
                }
                break;
            }
            _ = &mut stopping, if !told => {
                told = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    drop(done);
}

/// An accept error: a connection that went away before it was taken is
/// nothing; anything else (out of file descriptors) is logged and the
/// loop pauses, as hyper's server did, rather than spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Lowers the calling thread's CPU priority (sched(7)); on Linux a nice
/// value set this way is the thread's own.
pub(crate) fn lower_priority(priority: Priority) {
    #[cfg(unix)]
    {
        let lowered = match priority {
            Priority::Same => Ok(()),
            Priority::Nice(n) => {
                rustix::process::setpriority_process(None, i32::from(n)).map_err(|e| e.to_string())
            }
            Priority::Idle => {
                use thread_priority::{
                    NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
                };
                thread_priority::set_thread_priority_and_policy(
                    thread_priority::thread_native_id(),
                    ThreadPriority::Min,
                    ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
                )
                .map_err(|e| format!("{e:?}"))
            }
        };
        if let Err(e) = lowered {
            tracing::warn!(error = %e, %priority, "cannot lower a thread's CPU priority");
        }
    }
    #[cfg(not(unix))]
    let _ = priority;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn priorities_read_and_print() {
        for (text, p) in [
            ("same", Priority::Same),
            ("idle", Priority::Idle),
            ("nice-10", Priority::Nice(10)),
            ("nice-19", Priority::Nice(19)),
        ] {
            assert_eq!(text.parse::<Priority>().unwrap(), p);
            assert_eq!(p.to_string(), text);
        }
        for bad in ["nice-0", "nice-20", "nice--1", "low", ""] {
            let e = bad.parse::<Priority>().unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn a_head_is_read_for_its_bearer_token() {
        let head = |h: &str| read_head(h.as_bytes());
        assert_eq!(
            head("POST /v1/certificates HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc \r\n\r\n"),
            Head::Token("abc".into())
        );
        assert_eq!(
            head("GET / HTTP/1.1\r\nauthorization: bEaReR t0k\r\n\r\n{\"body\":1}"),
            Head::Token("t0k".into())
        );
        assert_eq!(
            head("GET / HTTP/1.1\r\nAuthorization: Basic abc\r\n\r\n"),
            Head::Anonymous
        );
        assert_eq!(
            head("GET / HTTP/1.1\r\nAuthorization: Bearer  \r\n\r\n"),
            Head::Anonymous
        );
        assert_eq!(head("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Head::Anonymous);
        assert_eq!(
            head("GET / HTTP/1.1\r\nAuthorization: Bearer abc\r\n"),
            Head::Partial
        );
        assert_eq!(head("GET / HTT"), Head::Partial);
        assert_eq!(head("\x16\x03\x01 not http\r\n\r\n"), Head::Anonymous);
    }

    fn table(token: &str) -> Arc<TokenTable> {
        let mut t = TokenTable::default();
        t.add(
            token,
            crate::auth::Principal {
                name: "admin".into(),
                role: crate::auth::Role::Admin,
                facilities: Vec::new(),
                contacts: Vec::new(),
                daily_rates: Default::default(),
            },
        );
        Arc::new(t)
    }

    /// A connection and what the server side of it sees.
    async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn connections_are_placed_by_their_first_head_without_consuming_it() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let placing = Placing {
            tokens: table("s3cret"),
            classify_wait: Duration::from_millis(300),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();

        let cases: [(&[&str], Lane); 4] = [
            (
                &["GET /v1/keys HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n"],
                Lane::Staff,
            ),
            (
                &["GET /v1/keys HTTP/1.1\r\nAuthorization: Bearer wrong\r\n\r\n"],
                Lane::Public,
            ),
            (
                &["POST /v1/verify HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"],
                Lane::Public,
            ),
            // The head in two pieces, a little apart.
            (
                &[
                    "GET /v1/keys HTTP/1.1\r\nAuthor",
                    "ization: Bearer s3cret\r\n\r\n",
                ],
                Lane::Staff,
            ),
        ];
        for (pieces, lane) in cases {
            let (mut client, server) = pair(&listener).await;
            let sent: String = pieces.concat();
            let writer = tokio::spawn(async move {
                for p in pieces {
                    client.write_all(p.as_bytes()).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                client
            });
            assert_eq!(placing.place(&server).await, lane, "{sent:?}");
            let _client = writer.await.unwrap();
            // Every byte is still there for hyper.
            let mut server = server;
            let mut got = vec![0u8; sent.len()];
            server.read_exact(&mut got).await.unwrap();
            assert_eq!(got, sent.as_bytes());
        }

        // A client that sends nothing is placed when the wait is over.
        let (_client, server) = pair(&listener).await;
        let started = std::time::Instant::now();
        assert_eq!(placing.place(&server).await, Lane::Public);
        assert!(started.elapsed() >= Duration::from_millis(250));
    }
}
