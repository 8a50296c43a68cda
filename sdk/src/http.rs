//! Outbound HTTP to granted origins (`divoc:plugin/http`).

use serde::Serialize;

pub use crate::bindings::divoc::plugin::http::{send, Method, Request, Response};
use crate::Error;

impl Request {
    /// A request without headers or body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a JSON body and the matching `content-type`.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, Error> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::internal(format!("cannot serialize body: {e}")))?;
        self.body = Some(bytes);
        Ok(self.header("content-type", "application/json"))
    }

    /// Sets the time-out (capped by the host at the call deadline).
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// Sends the request.
    pub fn send(&self) -> Result<Response, Error> {
        send(self)
    }
}

impl Response {
    /// `true` for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// POSTs `body` as JSON to `url`.
pub fn post_json<T: Serialize + ?Sized>(url: &str, body: &T) -> Result<Response, Error> {
    Request::new(Method::Post, url).json(body)?.send()
}

/// GETs `url`.
pub fn get(url: &str) -> Result<Response, Error> {
    Request::new(Method::Get, url).send()
}
