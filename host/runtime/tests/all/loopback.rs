//! A loopback HTTP endpoint for the plugins that call out (`http.rs`,
//! `distribution_adapters.rs`), and a runtime holding one such plugin with
//! the loopback origin granted.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use divoc_runtime::{Grant, Runtime};

use crate::support;

/// One request as the server saw it; header names lower-cased.
#[derive(Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A queued answer: a status and a body (sent as JSON when not empty).
struct Reply {
    status: u16,
    body: String,
}

/// A minimal HTTP/1.1 server on 127.0.0.1 answering with queued replies
/// (200 with an empty body once the queue is empty) and reporting each
/// request it read. Every answer carries `x-message-id: msg-<status>`.
pub struct Server {
    pub addr: SocketAddr,
    pub seen: mpsc::Receiver<Seen>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::channel();
        let replies = Arc::new(Mutex::new(VecDeque::<Reply>::new()));
        let queued = replies.clone();
        // The thread ends with the test process; the listener outlives the test.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut words = line.split_whitespace();
                let method = words.next().unwrap_or_default().to_string();
                let path = words.next().unwrap_or_default().to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((n, v)) = h.split_once(':') {
                        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let reply = queued.lock().unwrap().pop_front().unwrap_or(Reply {
                    status: 200,
                    body: String::new(),
                });
                let status = reply.status;
                let content_type = if reply.body.is_empty() {
                    ""
                } else {
                    "content-type: application/json\r\n"
                };
                let response = format!(
                    "HTTP/1.1 {status} Test\r\nx-message-id: msg-{status}\r\n{content_type}\
                     content-length: {}\r\nconnection: close\r\n\r\n{}",
                    reply.body.len(),
                    reply.body
                );
                let _ = stream.write_all(response.as_bytes());
                let _ = tx.send(Seen {
                    method,
                    path,
                    headers,
                    body,
                });
            }
        });
        Server {
            addr,
            seen,
            replies,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// Queues answers with these statuses and no body.
    pub fn answer(&self, statuses: impl IntoIterator<Item = u16>) {
        let mut q = self.replies.lock().unwrap();
        q.extend(statuses.into_iter().map(|status| Reply {
            status,
            body: String::new(),
        }));
    }

    /// Queues one answer with a JSON body.
    pub fn answer_json(&self, status: u16, body: serde_json::Value) {
        self.replies.lock().unwrap().push_back(Reply {
            status,
            body: body.to_string(),
        });
    }

    /// The next request, waiting up to 5 s.
    pub fn next(&self) -> Seen {
        self.seen.recv_timeout(Duration::from_secs(5)).unwrap()
    }

    /// Whether no request arrives within `ms`.
    pub fn quiet_for(&self, ms: u64) -> bool {
        self.seen.recv_timeout(Duration::from_millis(ms)).is_err()
    }
}

/// A runtime with the built plugin `krate` copied to `tmp`, its manifest's
/// example origin replaced by `origin` (the operator's deployment step),
/// granted `origin` and configured with `config`.
pub fn http_plugin_runtime(
    tmp: &Path,
    krate: &str,
    example_origin: &str,
    origin: &str,
    config: serde_json::Value,
) -> Runtime {
    http_plugin_runtime_from(
        &support::plugin_dir(krate),
        tmp,
        krate,
        example_origin,
        origin,
        config,
    )
}

/// [`http_plugin_runtime`] for the plugin built into `built` (e.g. a C
/// plugin in `target/c-plugins/<name>`), whose name is `krate`.
pub fn http_plugin_runtime_from(
    built: &Path,
    tmp: &Path,
    krate: &str,
    example_origin: &str,
    origin: &str,
    config: serde_json::Value,
) -> Runtime {
    support::copy_plugin(built, &tmp.join(krate), |m| {
        support::replace(m, example_origin, origin)
    });
    let mut settings = support::settings();
    settings.grants.insert(
        krate.into(),
        Grant {
            http_origins: vec![origin.to_string()],
            ..Grant::default()
        },
    );
    settings.config.insert(krate.into(), config);
    let runtime = support::runtime(settings);
    let report = runtime.reload_dir(tmp);
    assert_eq!(report.loaded, vec![format!("{krate}@0.1.0")], "{report:?}");
    runtime
}
