//! The `http` capability: outbound requests to granted origins only.
//!
//! Two checks guard every request: the URL's origin must be one the operator
//! granted, and every address its host name resolves to must be public unless
//! the grant itself names a local host (e.g. `http://127.0.0.1:9000`). The
//! connection goes to the addresses that were checked (the resolver below is
//! the only one used), so a DNS answer cannot change between check and use.
//! Redirects are not followed: a redirect could lead to an ungranted origin.

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::bindings::host::divoc::plugin::{http as wit, types};
use crate::grants::{is_local, Origin};

use super::PluginContext;

/// The shortest time-out the host will attempt a request with.
const MIN_TIMEOUT: Duration = Duration::from_millis(10);

pub(super) fn send(
    ctx: &PluginContext,
    request: wit::Request,
    remaining: Duration,
) -> Result<wit::Response, types::Error> {
    let url = url::Url::parse(&request.url)
        .map_err(|e| types::Error::InvalidInput(format!("bad url `{}`: {e}", request.url)))?;
    let origin = Origin::of(&url).ok_or_else(|| {
        types::Error::InvalidInput(format!("`{}` is not an http(s) URL", request.url))
    })?;
    let grant = ctx
        .caps
        .http_origins
        .iter()
        .find(|o| **o == origin)
        .ok_or_else(|| {
            types::Error::Rejected(format!(
                "origin {origin} is not granted to plugin `{}`",
                ctx.name
            ))
        })?;
    let allow_local = grant.names_local_host();

    let mut timeout = remaining;
    if let Some(ms) = request.timeout_ms {
        timeout = timeout.min(Duration::from_millis(u64::from(ms)));
    }
    if timeout < MIN_TIMEOUT {
        return Err(types::Error::Unavailable(
            "no time left in the call's deadline for an HTTP request".into(),
        ));
    }

    // The resolver records its refusal here, so the refusal is recognised
    // by what happened rather than by the wording of ureq's transport error.
    let refused: Arc<Mutex<Option<String>>> = Arc::default();
    let agent = {
        let (plugin, refused) = (ctx.name.clone(), refused.clone());
        ureq::AgentBuilder::new()
            .timeout(timeout)
            .redirects(0)
            .resolver(move |netloc: &str| -> std::io::Result<Vec<SocketAddr>> {
                let addrs: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
                if let Some(why) = refuse_local(netloc, &addrs, allow_local, &plugin) {
                    *refused.lock() = Some(why.clone());
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        why,
                    ));
                }
                Ok(addrs)
            })
            .build()
    };

    let method = match request.method {
        wit::Method::Get => "GET",
        wit::Method::Post => "POST",
        wit::Method::Put => "PUT",
        wit::Method::Patch => "PATCH",
        wit::Method::Delete => "DELETE",
    };
    let mut req = agent.request_url(method, &url);
    for (name, value) in &request.headers {
        req = req.set(name, value);
    }
    let result = match &request.body {
        Some(body) => req.send_bytes(body),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        // A 4xx/5xx is an answer, not a failure: hand it to the plugin.
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => {
            return Err(match refused.lock().take() {
                Some(why) => types::Error::Rejected(why),
                None => types::Error::Unavailable(format!("request to {origin} failed: {t}")),
            });
        }
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    let mut body = Vec::new();
    let limit = ctx.max_http_body as u64;
    response
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut body)
        .map_err(|e| types::Error::Unavailable(format!("reading the response failed: {e}")))?;
    if body.len() as u64 > limit {
        return Err(types::Error::Rejected(format!(
            "response body is larger than {limit} bytes"
        )));
    }
    Ok(wit::Response {
        status,
        headers,
        body,
    })
}

/// Why `netloc`, resolved to `addrs`, may not be connected to: a local
/// address reached through a grant that does not name a local host.
fn refuse_local(
    netloc: &str,
    addrs: &[SocketAddr],
    allow_local: bool,
    plugin: &str,
) -> Option<String> {
    if allow_local {
        return None;
    }
    let bad = addrs.iter().find(|a| is_local(a.ip()))?;
    Some(format!(
        "{netloc} resolves to the local address {}, which plugin `{plugin}` was not granted",
        bad.ip()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn local_addresses_need_a_grant_that_names_them() {
        let public = addrs(&["93.184.216.34:443"]);
        assert_eq!(refuse_local("example.org:443", &public, false, "p"), None);
        // One local address among public ones is enough to refuse: the
        // connection could go to any of them.
        let mixed = addrs(&["93.184.216.34:443", "10.0.0.7:443"]);
        let why = refuse_local("example.org:443", &mixed, false, "p").unwrap();
        assert!(why.contains("10.0.0.7") && why.contains("`p`"), "{why}");
        for local in [
            "127.0.0.1:80",
            "[::1]:80",
            "169.254.169.254:80",
            "[::ffff:127.0.0.1]:80",
        ] {
            let a = addrs(&[local]);
            assert!(
                refuse_local("alias:80", &a, false, "p").is_some(),
                "{local}"
            );
            // An explicit local grant (e.g. `http://127.0.0.1:9000`) allows it.
            assert_eq!(refuse_local("alias:80", &a, true, "p"), None);
        }
    }
}
