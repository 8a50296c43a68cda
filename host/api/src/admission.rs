//! Admission control: what the service takes on when more arrives than it
//! can do, so that a flood of the routes anyone may call cannot starve the
//! work of the people who run the service (issuance, and verification by
//! text).
//!
//! Three mechanisms, each a setting (`[admission]`) visible in `/metrics`:
//!
//! - **Per-client rate limits** on the routes that take no token (verify,
//!   status lists, pages, sign-in). GCRA (`governor`) keyed by the client's
//!   address: an IPv4 address, or an IPv6 /64 (one subscriber's prefix).
//!   Behind a proxy the address comes from `X-Forwarded-For`, believed only
//!   when the peer is one of `trusted-proxies`. A caller with a valid
//!   configured token is not limited there: a high-volume verifier gets a
//!   token. Over the limit: `429` with `Retry-After` (RFC 6585 §4).
//! - **Gates for expensive work** (QR image searches, PDF rendering, CSV and
//!   certificate imports): at most `concurrency` run at once and at most
//!   `queue` wait, each for at most `queue-wait-ms`. A request that finds
//!   the queue full, or waits out its time, is shed with `503` and
//!   `Retry-After`: never an unbounded wait.
//! - **Image searches run on their own threads at the lowest CPU priority**
//!   (`SCHED_IDLE`), so what gets past the gate yields both cores to
//!   issuance. A search that outlives `image-budget-ms` is answered then;
//!   the thread finishes it holding its gate place, so the bound holds.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::TokenTable;
use crate::error::ApiError;
use crate::routes::{self, Access};

/// One gate's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateSettings {
    /// How many run at once.
    pub concurrency: usize,
    /// How many may wait for a place; one more is shed.
    pub queue: usize,
    /// Longest a request waits for a place before it is shed.
    pub queue_wait: Duration,
}

/// Every bound of admission control.
#[derive(Debug, Clone)]
pub struct AdmissionSettings {
    /// Peers whose `X-Forwarded-For` is believed (a load balancer, a CDN).
    pub trusted_proxies: Vec<IpNet>,
    /// Requests a second one client may make to the routes that take no
    /// token, sustained.
    pub public_per_second: u32,
    /// How many of those it may make at once after a quiet spell.
    pub public_burst: u32,
    /// What one QR image search costs against that budget, in requests.
    pub image_cost: u32,
    /// Sign-in codes (`POST /v1/recipients/otp`) one client may ask for in
    /// an hour, whatever the numbers.
    pub sign_in_per_hour: u32,
    /// Sign-in codes the whole service sends in a minute (each one is an
    /// SMS someone pays for).
    pub sign_in_total_per_minute: u32,
    /// QR image searches.
    pub images: GateSettings,
    /// PDF renderings.
    pub pdfs: GateSettings,
    /// CSV uploads, certificate imports and programme activations.
    pub imports: GateSettings,
    /// Longest a client waits for one image search.
    pub image_budget: Duration,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            trusted_proxies: Vec::new(),
            public_per_second: 20,
            public_burst: 100,
            image_cost: 10,
            sign_in_per_hour: 30,
            sign_in_total_per_minute: 3000,
            images: GateSettings {
                concurrency: 1,
                queue: 8,
                queue_wait: Duration::from_secs(2),
            },
            pdfs: GateSettings {
                concurrency: 2,
                queue: 32,
                queue_wait: Duration::from_secs(5),
            },
            imports: GateSettings {
                concurrency: 2,
                queue: 4,
                queue_wait: Duration::from_secs(5),
            },
            image_budget: Duration::from_millis(500),
        }
    }
}

/// A setting admission control cannot work with.
#[derive(Debug, thiserror::Error)]
#[error("admission.{setting}: {message}")]
pub struct SettingsError {
    /// The setting, as named in the config file.
    pub setting: &'static str,
    /// What is wrong with it.
    pub message: &'static str,
}

/// The address a request is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client(pub IpAddr);

/// Admission control's state, shared by the middleware and the handlers.
pub struct Admission {
    settings: AdmissionSettings,
    public: DefaultKeyedRateLimiter<IpAddr>,
    sign_in: DefaultKeyedRateLimiter<IpAddr>,
    sign_in_total: DefaultDirectRateLimiter,
    image_cost: NonZeroU32,
    /// QR image searches.
    pub images: Gate,
    /// PDF renderings.
    pub pdfs: Gate,
    /// CSV uploads and imports.
    pub imports: Gate,
    low: LowPriority,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn nonzero(setting: &'static str, n: u32) -> Result<NonZeroU32, SettingsError> {
    NonZeroU32::new(n).ok_or(SettingsError {
        setting,
        message: "must be at least 1",
    })
}

impl Admission {
    /// Checks the settings and starts the image threads.
    pub fn new(settings: AdmissionSettings) -> Result<Admission, SettingsError> {
        let per_second = nonzero("public-per-second", settings.public_per_second)?;
        let burst = nonzero("public-burst", settings.public_burst)?;
        let image_cost = nonzero("image-cost", settings.image_cost)?;
        if image_cost > burst {
            return Err(SettingsError {
                setting: "image-cost",
                message: "must not exceed public-burst (an image could never be taken)",
            });
        }
        let per_hour = nonzero("sign-in-per-hour", settings.sign_in_per_hour)?;
        let total = nonzero(
            "sign-in-total-per-minute",
            settings.sign_in_total_per_minute,
        )?;
        for (setting, gate) in [
            ("images.concurrency", settings.images),
            ("pdfs.concurrency", settings.pdfs),
            ("imports.concurrency", settings.imports),
        ] {
            if gate.concurrency == 0 {
                return Err(SettingsError {
                    setting,
                    message: "must be at least 1",
                });
            }
        }
        // A client's sign-ins come a few at once (a family), then the rest
        // spread over the hour.
        let sign_in = Quota::with_period(Duration::from_secs(3600) / per_hour.get())
            .map(|q| q.allow_burst(per_hour.min(NonZeroU32::MIN.saturating_add(4))))
            .ok_or(SettingsError {
                setting: "sign-in-per-hour",
                message: "is too large",
            })?;
        Ok(Admission {
            public: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            sign_in: RateLimiter::keyed(sign_in),
            sign_in_total: RateLimiter::direct(Quota::per_minute(total)),
            image_cost,
            images: Gate::new("images", settings.images),
            pdfs: Gate::new("pdfs", settings.pdfs),
            imports: Gate::new("imports", settings.imports),
            low: LowPriority::start(settings.images.concurrency),
            settings,
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &AdmissionSettings {
        &self.settings
    }

    /// Counts one request of `client` against its rate; 429 when it is over.
    pub fn admit_public(&self, client: Client) -> Result<(), ApiError> {
        self.public.check_key(&client.0).map_err(|not_until| {
            refuse(
                "public",
                "too many requests from this address; try again after Retry-After seconds, \
                 or use a token",
                wait(&not_until, self.public.clock()),
            )
        })
    }

    /// Charges a QR image search to `client` (beyond the request itself):
    /// 429 when its budget cannot pay.
    pub fn charge_image(&self, client: Client) -> Result<(), ApiError> {
        self.charge(
            client,
            self.image_cost.get() - 1,
            "images",
            "too many image searches from this address; send the QR's text, or try again \
             after Retry-After seconds",
        )
    }

    /// Charges a verification batch to `client`: a tenth of a request per
    /// credential beyond the request itself (a verification costs about a
    /// tenth of what serving a request does).
    pub fn charge_batch(&self, client: Client, items: usize) -> Result<(), ApiError> {
        let units = u32::try_from(items / 10).unwrap_or(u32::MAX);
        self.charge(
            client,
            units.min(self.settings.public_burst),
            "batches",
            "too many verifications from this address; try again after Retry-After seconds, \
             or use a token",
        )
    }

    fn charge(
        &self,
        client: Client,
        units: u32,
        class: &'static str,
        message: &'static str,
    ) -> Result<(), ApiError> {
        let Some(units) = NonZeroU32::new(units) else {
            return Ok(());
        };
        match self.public.check_key_n(&client.0, units) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(refuse(
                class,
                message,
                wait(&not_until, self.public.clock()),
            )),
            // Bounded by public-burst (image-cost is checked at start-up).
            Err(_) => Err(ApiError::internal("a charge exceeds public-burst")),
        }
    }

    /// Counts a sign-in code request of `client`: 429 when it has asked
    /// for too many this hour, or the service has sent its minute's worth.
    pub fn admit_sign_in(&self, client: Client) -> Result<(), ApiError> {
        if let Err(not_until) = self.sign_in.check_key(&client.0) {
            return Err(refuse(
                "sign-in",
                "too many sign-in codes asked for from this address",
                wait(&not_until, self.sign_in.clock()),
            ));
        }
        if let Err(not_until) = self.sign_in_total.check() {
            return Err(refuse(
                "sign-in-total",
                "the service is sending as many sign-in codes as it may; try again shortly",
                wait(&not_until, self.sign_in_total.clock()),
            ));
        }
        Ok(())
    }

    /// Runs a QR image search: through the image gate, on a low-priority
    /// thread, answered within the image budget. The search is handed its
    /// deadline, to give up early where it can. A search its thread has not
    /// started by then (the cores were busy with everything else) is not
    /// started at all, and the client is told to come back (503); one that
    /// started and ran out of time is a 422 naming `qr_image`.
    pub async fn search_image<T: Send + 'static>(
        &self,
        search: impl FnOnce(Instant) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let pass = self.images.enter().await?;
        let deadline = Instant::now() + self.settings.image_budget;
        let started = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job_started = started.clone();
        self.low.run(Box::new(move || {
            // The place is held until the search ends, answered or not.
            let _pass = pass;
            if Instant::now() >= deadline {
                return;
            }
            job_started.store(true, Ordering::Release);
            let _ = tx.send(search(deadline));
        }))?;
        let answer = tokio::time::timeout_at(deadline.into(), rx).await;
        match answer {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(_)) if !started.load(Ordering::Acquire) => {
                Err(self.images.shed("no core was free for it in time"))
            }
            Ok(Err(_)) => Err(ApiError::internal("the image search failed")),
            Err(_) if !started.load(Ordering::Acquire) => {
                Err(self.images.shed("no core was free for it in time"))
            }
            Err(_) => {
                metrics::counter!("divoc_admission_budget_exceeded_total", "gate" => "images")
                    .increment(1);
                Err(ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "image_budget_exceeded",
                    "no QR code was found within the time an image may take; send a \
                     closer, sharper image or the QR's text",
                )
                .with_field("qr_image"))
            }
        }
    }

    /// Forgets clients that are back to a full budget (the keyed limiters
    /// otherwise keep one entry per address ever seen), and publishes the
    /// gates' state. Every few seconds, from the server.
    pub fn upkeep(&self) {
        self.public.retain_recent();
        self.public.shrink_to_fit();
        self.sign_in.retain_recent();
        self.sign_in.shrink_to_fit();
        metrics::gauge!("divoc_admission_clients_tracked").set(self.public.len() as f64);
    }

    /// The bounds and the gates' state as gauges, for `/metrics`.
    pub fn publish(&self) {
        let s = &self.settings;
        let limit = |name: &'static str, value: f64| {
            metrics::gauge!("divoc_admission_limit", "limit" => name).set(value);
        };
        limit("public-per-second", f64::from(s.public_per_second));
        limit("public-burst", f64::from(s.public_burst));
        limit("image-cost", f64::from(s.image_cost));
        limit("sign-in-per-hour", f64::from(s.sign_in_per_hour));
        limit(
            "sign-in-total-per-minute",
            f64::from(s.sign_in_total_per_minute),
        );
        limit("image-budget-seconds", s.image_budget.as_secs_f64());
        for gate in [&self.images, &self.pdfs, &self.imports] {
            gate.publish();
        }
    }
}

/// Seconds until a refused client may try again, rounded up.
fn wait(
    not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>,
    clock: &DefaultClock,
) -> u64 {
    // The limiter's own clock: making a new one costs a tenth of a refusal
    // (it checks the CPU's time-stamp counter; measured with perf).
    let d = not_until.wait_time_from(clock.now());
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A 429, counted by class.
fn refuse(class: &'static str, message: &'static str, retry_after: u64) -> ApiError {
    metrics::counter!("divoc_admission_rate_limited_total", "class" => class).increment(1);
    ApiError::rate_limited(message, retry_after)
}

/// A bounded place for expensive work: `concurrency` at once, `queue`
/// waiting, each for at most `queue_wait`; past that, shed.
pub struct Gate {
    name: &'static str,
    settings: GateSettings,
    places: Arc<Semaphore>,
    waiting: AtomicUsize,
    shed: AtomicU64,
}

/// A place taken in a gate; the place frees when this drops.
pub type GatePass = OwnedSemaphorePermit;

impl Gate {
    fn new(name: &'static str, settings: GateSettings) -> Gate {
        Gate {
            name,
            settings,
            places: Arc::new(Semaphore::new(settings.concurrency)),
            waiting: AtomicUsize::new(0),
            shed: AtomicU64::new(0),
        }
    }

    /// Takes a place, waiting in the queue if there is room in it; 503
    /// `overloaded` with `Retry-After` when there is not, or when the wait
    /// runs out.
    pub async fn enter(&self) -> Result<GatePass, ApiError> {
        if let Ok(pass) = self.places.clone().try_acquire_owned() {
            return Ok(pass);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.settings.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(self.shed("its queue is full"));
        }
        let waited = tokio::time::timeout(
            self.settings.queue_wait,
            self.places.clone().acquire_owned(),
        )
        .await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(pass)) => Ok(pass),
            Ok(Err(_)) => Err(self.shed("it is closed")),
            Err(_) => Err(self.shed("the wait for a place ran out")),
        }
    }

    fn shed(&self, why: &str) -> ApiError {
        self.shed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("divoc_admission_shed_total", "gate" => self.name).increment(1);
        // About as long as the queue takes to drain.
        let retry = self.settings.queue_wait.as_secs().max(1);
        ApiError::overloaded(
            format!(
                "the service is at capacity for {} ({why}); try again after Retry-After \
                 seconds",
                self.name
            ),
            retry,
        )
    }

    /// How many requests this gate has shed.
    pub fn shed_count(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    fn publish(&self) {
        let g = |what: &'static str, value: f64| {
            metrics::gauge!("divoc_admission_gate", "gate" => self.name, "what" => what).set(value);
        };
        let free = self.places.available_permits();
        g("concurrency", self.settings.concurrency as f64);
        g("queue", self.settings.queue as f64);
        g("queue-wait-seconds", self.settings.queue_wait.as_secs_f64());
        g(
            "running",
            self.settings.concurrency.saturating_sub(free) as f64,
        );
        g("waiting", self.waiting.load(Ordering::Relaxed) as f64);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads that run at the lowest CPU priority: what they do takes only
/// the time the rest of the service leaves.
struct LowPriority {
    jobs: std::sync::mpsc::SyncSender<Job>,
}

impl LowPriority {
    fn start(threads: usize) -> LowPriority {
        // The gate in front bounds what is in flight to `threads`; the
        // channel's room is slack.
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(threads * 2);
        let queue = Arc::new(parking_lot::Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("divoc-image-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = queue.lock().recv();
                        let Ok(job) = job else { return };
                        // A panic ends the job (its answer is dropped and
                        // the client gets a 500), not the thread.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an image thread");
            }
        }
        LowPriority { jobs }
    }

    fn run(&self, job: Job) -> Result<(), ApiError> {
        self.jobs
            .try_send(job)
            .map_err(|_| ApiError::overloaded("the image threads are busy", 1))
    }
}

/// The calling thread to `SCHED_IDLE` (sched(7)): it runs only on a core
/// no normal thread wants, and a normal thread that wakes takes its core
/// at once. Measured with `divoc bench abuse`: at nice 19 (`SCHED_BATCH`)
/// the image thread still took a quarter of the server's CPU samples and
/// issuance fell to 58 % of its rate, as a waking writer or worker waited
/// for it. Under a load that keeps both cores busy, image searches wait
/// and are shed at the gate: they are what gives way.
fn lower_priority() {
    crate::lanes::lower_priority(crate::lanes::Priority::Idle);
}

/// The address a request is counted against: the peer, or, when the peer
/// is a trusted proxy, the last address in `X-Forwarded-For` that is not
/// one (the one the nearest trusted proxy saw). An IPv6 address counts as
/// its /64.
pub fn client_of(request: &Request, trusted: &[IpNet]) -> Client {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let peer = canonical(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut client = peer;
    if is_trusted(&peer) {
        // Right to left: each trusted hop appended the address it saw.
        let hops = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else { break };
            client = canonical(ip);
            if !is_trusted(&client) {
                break;
            }
        }
    }
    Client(prefix(client))
}

/// IPv4-mapped IPv6 as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An IPv6 address's /64: a subscriber is handed a whole /64 and can
/// change the rest at will.
fn prefix(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// What the admission middleware needs.
#[derive(Clone)]
pub struct AdmissionState {
    /// The limits.
    pub admission: Arc<Admission>,
    /// To tell a configured token (not limited) from none.
    pub tokens: Arc<TokenTable>,
}

/// Route middleware: the per-client rate limits of the routes that take no
/// token. Runs before the role check, so a refused request costs little.
pub async fn admit(
    State(state): State<AdmissionState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let access = routes::access(request.method().as_str(), &path);
    // Routes that take only tokens are the role check's; an unknown one it
    // refuses. Health checks are never limited: a load balancer behind
    // the same address as a flood must still see the service up.
    if !matches!(access, Some(Access::Public | Access::RolesOrProof(_)))
        || path == "/healthz"
        || path == "/readyz"
    {
        return next.run(request).await;
    }
    let token = crate::auth::bearer_token(&request);
    if token.is_some_and(|t| state.tokens.configured(t).is_some()) {
        return next.run(request).await;
    }
    let admission = &state.admission;
    let client = client_of(&request, &admission.settings.trusted_proxies);
    if let Err(e) = admission.admit_public(client) {
        return e.into_response();
    }
    if request.method() == axum::http::Method::POST && path == "/v1/recipients/otp" {
        if let Err(e) = admission.admit_sign_in(client) {
            return e.into_response();
        }
    }
    request.extensions_mut().insert(client);
    next.run(request).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: Option<&str>) -> Request {
        let mut r = Request::new(axum::body::Body::empty());
        r.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        if let Some(f) = forwarded {
            r.headers_mut()
                .insert("x-forwarded-for", f.parse().unwrap());
        }
        r
    }

    fn ip(s: &str) -> Client {
        Client(s.parse().unwrap())
    }

    #[test]
    fn the_peer_is_the_client_unless_it_is_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // An untrusted peer's header is the client's own claim: ignored.
        let r = request("203.0.113.7:5000", Some("198.51.100.1"));
        assert_eq!(client_of(&r, &trusted), ip("203.0.113.7"));
        // Through a trusted proxy: the address it saw.
        let r = request("10.1.2.3:5000", Some("198.51.100.1"));
        assert_eq!(client_of(&r, &trusted), ip("198.51.100.1"));
        // A forged first hop is skipped: the last untrusted hop counts.
        let r = request("10.1.2.3:5000", Some("1.2.3.4, 198.51.100.1, 10.9.9.9"));
        assert_eq!(client_of(&r, &trusted), ip("198.51.100.1"));
        // Garbage stops the walk at the last good hop.
        let r = request("10.1.2.3:5000", Some("nonsense"));
        assert_eq!(client_of(&r, &trusted), ip("10.1.2.3"));
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let r = request("[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", None);
        assert_eq!(client_of(&r, &[]), ip("2001:db8:1:2::"));
        let r = request("[::ffff:192.0.2.9]:443", None);
        assert_eq!(client_of(&r, &[]), ip("192.0.2.9"));
    }

    #[test]
    fn over_the_burst_is_429_with_retry_after() {
        let admission = Admission::new(AdmissionSettings {
            public_per_second: 1,
            public_burst: 3,
            image_cost: 2,
            ..AdmissionSettings::default()
        })
        .unwrap();
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            admission.admit_public(a).unwrap();
        }
        let refused = admission.admit_public(a).unwrap_err();
        assert_eq!(refused.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after, Some(1));
        // Another address has its own budget.
        admission.admit_public(ip("192.0.2.2")).unwrap();
        assert!(admission.charge_image(a).is_err());
        // A verification batch costs a tenth of a request an item (at most
        // the burst): 200 items take a fresh address's whole budget.
        let c = ip("192.0.2.3");
        admission.charge_batch(c, 9).unwrap();
        admission.charge_batch(c, 200).unwrap();
        assert_eq!(admission.admit_public(c).unwrap_err().code, "rate_limited");
    }

    #[test]
    fn bad_settings_are_named() {
        let e = Admission::new(AdmissionSettings {
            image_cost: 500,
            ..AdmissionSettings::default()
        })
        .unwrap_err();
        assert_eq!(e.setting, "image-cost");
        let e = Admission::new(AdmissionSettings {
            public_per_second: 0,
            ..AdmissionSettings::default()
        })
        .unwrap_err();
        assert_eq!(e.setting, "public-per-second");
    }

    #[tokio::test]
    async fn a_full_gate_sheds_with_503_and_a_waiter_times_out() {
        let gate = Gate::new(
            "test",
            GateSettings {
                concurrency: 1,
                queue: 1,
                queue_wait: Duration::from_millis(50),
            },
        );
        let held = gate.enter().await.unwrap();
        // The one queue place: waits, then is shed when the wait runs out.
        let waiter = gate.enter();
        tokio::pin!(waiter);
        // Meanwhile the queue is full: a third is shed at once.
        let started = std::time::Instant::now();
        let third = tokio::select! {
            biased;
            r = &mut waiter => panic!("the waiter got in: {r:?}"),
            r = async { tokio::task::yield_now().await; gate.enter().await } => r,
        };
        let third = third.unwrap_err();
        assert_eq!(third.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(third.retry_after, Some(1));
        assert!(started.elapsed() < Duration::from_millis(40));
        let waited = waiter.await.unwrap_err();
        assert_eq!(waited.code, "overloaded");
        assert_eq!(gate.shed_count(), 2);
        // Once the place frees, the next one gets in.
        drop(held);
        let _again = gate.enter().await.unwrap();
    }

    #[tokio::test]
    async fn an_image_search_past_its_budget_is_answered_and_keeps_its_place() {
        let admission = Admission::new(AdmissionSettings {
            image_budget: Duration::from_millis(50),
            images: GateSettings {
                concurrency: 1,
                queue: 0,
                queue_wait: Duration::from_millis(10),
            },
            ..AdmissionSettings::default()
        })
        .unwrap();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let slow = admission
            .search_image(move |_| {
                let _ = wait.recv_timeout(Duration::from_secs(5));
            })
            .await
            .unwrap_err();
        assert_eq!(slow.code, "image_budget_exceeded");
        // The search still runs: its place is still taken.
        let shed = admission.search_image(|_| ()).await.unwrap_err();
        assert_eq!(shed.code, "overloaded");
        release.send(()).unwrap();
        // Give the thread a moment to finish and free the place.
        let mut got = Err(ApiError::internal("never"));
        for _ in 0..100 {
            got = admission
                .search_image(|deadline| deadline > Instant::now())
                .await;
            if got.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(got.unwrap(), "the search gets a deadline in the future");
    }

    #[tokio::test]
    async fn a_search_no_thread_could_start_in_time_is_shed_and_never_run() {
        let admission = Admission::new(AdmissionSettings {
            image_budget: Duration::from_millis(50),
            images: GateSettings {
                concurrency: 2,
                queue: 0,
                queue_wait: Duration::from_millis(10),
            },
            ..AdmissionSettings::default()
        })
        .unwrap();
        // Both image threads busy (as when the cores are).
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let blocked = Arc::new(parking_lot::Mutex::new(blocked));
        for _ in 0..2 {
            let blocked = blocked.clone();
            admission
                .low
                .run(Box::new(move || {
                    let _ = blocked.lock().recv_timeout(Duration::from_secs(5));
                }))
                .unwrap();
        }
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let refused = admission
            .search_image(move |_| flag.store(true, Ordering::SeqCst))
            .await
            .unwrap_err();
        assert_eq!(refused.code, "overloaded");
        assert_eq!(refused.retry_after, Some(1));
        release.send(()).unwrap();
        release.send(()).unwrap();
        // The job's turn comes after its deadline: it is dropped unrun.
        let after = admission.search_image(|_| ()).await;
        assert!(after.is_ok(), "{after:?}");
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn image_searches_run_as_idle_work() {
        let admission = Admission::new(AdmissionSettings::default()).unwrap();
        let stat = admission
            .search_image(|_| std::fs::read_to_string("/proc/thread-self/stat").unwrap())
            .await
            .unwrap();
        // proc(5): after the command's closing parenthesis, field 41
        // (policy) is the 39th; SCHED_IDLE is 5.
        let after = stat.rsplit_once(')').unwrap().1;
        let policy: i32 = after.split_whitespace().nth(38).unwrap().parse().unwrap();
        assert_eq!(policy, 5);
    }
}
