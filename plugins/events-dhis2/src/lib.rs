//! Event subscriber exporting vaccinations to DHIS2.
//!
//! `mode = "aggregate"` (default) keeps running totals per period,
//! organisation unit and data element, and sends them to
//! `{url}/api/dataValueSets`; `mode = "tracker"` sends one anonymous event
//! per vaccination to an event program through `{url}/api/tracker`.
//! Configuration: README.md. How replays stay exact: [`export`].
//!
//! Errors go back to the host's event feed, which retries the whole batch
//! with back-off and never skips it: [`Error::Unavailable`] for DHIS2 being
//! down, slow or unreachable, [`Error::Rejected`] for DHIS2 refusing the
//! data or the credentials, [`Error::Internal`] for a configuration that
//! cannot work. Events that carry nothing exportable (another kind, a
//! payload without programme or dose, no matching `data_elements` row) are
//! acknowledged without a request: retrying could never export them.

pub mod config;
pub mod dhis2;
pub mod event;
pub mod export;

use divoc_sdk::events::{Event, Guest};
use divoc_sdk::http::{Method, Request};
use divoc_sdk::{kv, log, Error};
use serde_json::Value;

use crate::config::Config;
use crate::export::Host;

/// The host's capabilities behind [`Host`].
struct Capabilities;

impl Host for Capabilities {
    fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        kv::get(key)
    }

    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), Error> {
        kv::set(key, value)
    }

    fn post_json(
        &mut self,
        url: &str,
        authorization: &str,
        body: &Value,
        timeout_ms: u32,
    ) -> Result<(u16, Vec<u8>), Error> {
        let response = Request::new(Method::Post, url)
            .header("authorization", authorization)
            .header("accept", "application/json")
            .json(body)?
            .timeout_ms(timeout_ms)
            .send()?;
        Ok((response.status, response.body))
    }

    fn info(&mut self, message: &str) {
        log::info(message);
    }

    fn warn(&mut self, message: &str) {
        log::warn(message);
    }
}

fn load() -> Result<Config, Error> {
    let (config, unknown) = Config::parse(&divoc_sdk::config::json())?;
    if !unknown.is_empty() {
        log::warn(&format!(
            "unknown configuration keys ignored: {}",
            unknown.join(", ")
        ));
    }
    Ok(config)
}

struct Plugin;

impl Guest for Plugin {
    fn interests() -> Vec<String> {
        // A configuration that does not parse is reported by `deliver`;
        // until then the default source is asked for.
        let source = load().map(|c| c.source).unwrap_or_default();
        vec![source.kind().to_string()]
    }

    fn deliver(events: Vec<Event>) -> Result<u64, Error> {
        let config = load()?;
        export::deliver(&config, &mut Capabilities, &events)
    }
}

divoc_sdk::export_event_subscriber!(Plugin);
