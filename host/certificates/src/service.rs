//! [`CertificateService`]: validate → sign → store, and everything after.
//!
//! All methods block (they wait for the database writer's group commit or
//! a pooled read); async callers run them on `spawn_blocking`, except
//! [`CertificateService::issue_async`]. The service
//! is `Send + Sync` and cheap to clone. Open one service per database: it
//! allocates status-list indexes in memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::RngCore;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use divoc_crypto::ids::generate_certificate_id;
use divoc_crypto::keys::Keyring;
use divoc_storage::certificates::{
    self as store, InsertOutcome, NewCertificate, PreparedCertificate, StatusWrite,
};
use divoc_storage::{meta, Database, PendingWrite, WriteAnswer};
use divoc_time::{SharedClock, SystemClock, Zone};

use crate::certificate::{self as rules, Certificate, Decision, Status, StatusChange};
use crate::credential::{self, CredentialConfig, CredentialParams};
use crate::error::CertError;
use crate::hooks::{self, IdentityClaim, IssueHooks, NoHooks, PaymentClaim, PaymentReceipt};
use crate::qr;
use crate::request::IssueRequest;
use crate::status_list::{self, Bitstring, StatusPurpose, LIST_SIZE};
use crate::types::CredentialType;
use crate::verify::{
    self, KnownStatus, StatusEntry, StatusSource, StatusUnavailable, Verdict, VerifyInput,
};

/// Meta key of the secret that keys contact lookup hashes.
const LOOKUP_KEY: &str = "certificates.lookup_key";

/// Service settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// URLs used inside credentials.
    pub credential: CredentialConfig,
    /// Corrections allowed per dose (DIVOC deployments used 1-3).
    pub max_corrections: u32,
    /// How long verifiers may cache a status list (its `ttl`), ms.
    pub status_list_ttl_ms: i64,
    /// Distribution channels (plugin names) every new certificate is
    /// queued for, one outbox row each; empty = one row for a channel
    /// chosen later.
    pub distribution_channels: Vec<String>,
    /// Operator-defined credential types by name (see [`crate::types`]);
    /// checked with [`CredentialType::check`] before they get here.
    pub types: std::collections::BTreeMap<String, CredentialType>,
    /// Where the time comes from (tests set it instead of sleeping).
    pub clock: SharedClock,
    /// The deployment's time zone: local date-times without an offset
    /// (DIVOC's clients sent them) are read in it.
    pub zone: Zone,
}

impl ServiceConfig {
    /// Defaults for a base URL: 3 corrections, 5-minute status list TTL.
    pub fn new(base_url: &str) -> Self {
        ServiceConfig {
            credential: CredentialConfig::new(base_url),
            max_corrections: 3,
            status_list_ttl_ms: 300_000,
            distribution_channels: Vec::new(),
            types: std::collections::BTreeMap::new(),
            clock: SystemClock::shared(),
            zone: Zone::utc(),
        }
    }
}

/// One entry of [`CertificateService::context_index`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContextInfo {
    /// The URL credentials name in `@context`.
    pub url: String,
    /// The `{name}` of `/v1/contexts/{name}` when this server serves it.
    pub name: Option<String>,
    /// The URL of the copy this server serves.
    pub served: Option<String>,
    /// SHA-256 (hex) of the document's bytes.
    pub sha256: String,
}

/// Whether an issue call stored a new certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueStatus {
    /// Newly issued (HTTP 201).
    Created,
    /// The same request was issued before (HTTP 200).
    Existing,
}

/// The answer to an issue call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issued {
    /// Certificate id.
    pub id: String,
    /// Created or existing.
    pub status: IssueStatus,
}

/// A signed status list as served: the credential's JSON and its ETag.
#[derive(Debug)]
pub struct SignedStatusList {
    /// The `BitstringStatusListCredential`, serialized.
    pub body: String,
    /// Weak ETag over the list's bits: equal for equal bits, whatever the
    /// signature.
    pub etag: String,
    /// How long verifiers may cache it (the list's `ttl`), seconds.
    pub max_age_s: u64,
}

struct CachedList {
    list: Arc<SignedStatusList>,
    /// [`Inner::status_generation`] when it was built.
    generation: u64,
    /// When it must be rebuilt anyway: a suspension in it lifts, or its
    /// `ttl` passed (ms).
    refresh_at_ms: i64,
}

/// The certificate service. See the module docs.
#[derive(Clone)]
pub struct CertificateService {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    keyring: Keyring,
    cfg: ServiceConfig,
    /// Status sequence numbers this host hands out; see
    /// [`status_list::slot_for_sequence`] and [`Slots`].
    slots: Mutex<Slots>,
    /// Signed status lists by list id, reused until a status changes
    /// (see [`CertificateService::signed_status_list`]).
    status_lists: Mutex<HashMap<String, CachedList>>,
    /// Bumped after every write that may change a status; a cached list
    /// built under an older generation is stale.
    status_generation: AtomicU64,
    lookup_key: String,
    /// Identity and payment checks run before signing.
    hooks: Arc<dyn IssueHooks>,
    /// The JSON-LD contexts our credentials name.
    contexts: crate::contexts::ContextStore,
    /// On PostgreSQL, certificates issued one per request wait here for
    /// the write that stores them together (see
    /// [`CertificateService::store`]); `None` on SQLite.
    merging: Option<Arc<Mutex<Vec<Waiting>>>>,
}

/// A certificate waiting to be stored with others, and who to answer.
type Waiting = (Prepared, WriteAnswer<InsertOutcome>);

impl std::fmt::Debug for CertificateService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateService")
            .field("issuer", &self.inner.keyring.did())
            .finish_non_exhaustive()
    }
}

/// A prepared, signed certificate waiting to be stored.
struct Prepared {
    new: PreparedCertificate,
    /// The payment authorised for it, recorded with it.
    payment: Option<PaymentReceipt>,
}

/// Work a caller does in a certificate's own transaction
/// ([`CertificateService::issue_alongside`]); given the certificate's id.
pub type Alongside =
    Box<dyn FnOnce(&divoc_storage::Tx<'_>, &str) -> divoc_storage::Result<()> + Send>;

enum Step {
    Done(Result<Issued, CertError>),
    Store(Box<Prepared>),
}

/// How [`CertificateService::prepare`] learns whether the dose is issued
/// already (a re-send is answered before signing or charging).
#[derive(Clone, Copy)]
enum Existing<'a> {
    /// It reads it.
    Read,
    /// It does not look: a correction issues the dose again on purpose.
    Skip,
    /// From a batch's one read ([`store::stored_doses`]); a dose not in
    /// it is read.
    Known(&'a store::StoredDoses),
}

fn payload_hash(req: &IssueRequest) -> Result<String, CertError> {
    let mut v = serde_json::to_value(req).map_err(|e| CertError::Internal(e.to_string()))?;
    // How a dose was paid for is not part of what is certified: a re-send
    // with another voucher is still the same certificate (and must not be
    // charged again).
    if let Some(o) = v.as_object_mut() {
        o.remove("payment");
    }
    let canonical = divoc_crypto::jcs::canonicalize_to_vec(&v)
        .map_err(|e| CertError::Internal(e.to_string()))?;
    Ok(hex::encode(Sha256::digest(canonical)))
}

/// Contacts are compared case- and space-insensitively (`tel:98 80` =
/// `TEL:9880`).
fn normalize_contact(c: &str) -> String {
    c.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Status sequence numbers are leased from the database in blocks of this
/// many (a 32nd of a status list): a host restarting leaves at most one
/// block's slots unused.
pub const SLOT_BLOCK: u64 = 4096;

/// This host's block of status sequence numbers: `next..end`, and the
/// lowest block it may lease next (above every number in use when it
/// started, for certificates issued before blocks were leased).
struct Slots {
    next: u64,
    end: u64,
    floor: u64,
}

/// Who leased a block, for operators: the host name and process id.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!("{name}:{}", std::process::id())
}

impl CertificateService {
    /// Opens the service over a database and keyring: recovers the status
    /// index allocator from stored certificates and loads (or creates) the
    /// lookup-hash key.
    pub fn open(db: Database, keyring: Keyring, cfg: ServiceConfig) -> Result<Self, CertError> {
        Self::open_with_hooks(db, keyring, cfg, Arc::new(NoHooks))
    }

    /// [`open`](Self::open) with identity and payment checks: every issue
    /// and correction runs them before signing (see [`crate::hooks`]).
    pub fn open_with_hooks(
        db: Database,
        keyring: Keyring,
        cfg: ServiceConfig,
        hooks: Arc<dyn IssueHooks>,
    ) -> Result<Self, CertError> {
        let next_seq = db.read(|r| {
            let Some(max) = store::max_status_index(r)? else {
                return Ok(0);
            };
            // Slots are scrambled within a list: the allocator position is
            // the largest sequence number whose slot is in use.
            let base = max / LIST_SIZE * LIST_SIZE;
            let table = status_list::sequence_table();
            let used = store::status_indexes(r, base, base + LIST_SIZE)?;
            let last = used
                .iter()
                .filter_map(|i| table.get(usize::try_from(i - base).ok()?))
                .max()
                .copied()
                .unwrap_or(0);
            Ok(base + u64::from(last) + 1)
        })?;
        // The key makes stored lookup hashes useless without the database's
        // own meta row: contact + date of birth is a small space that an
        // unkeyed hash would not protect.
        let lookup_key = db
            .write(|tx| {
                meta::get_or_insert_with(tx, LOOKUP_KEY, || {
                    let mut k = [0u8; 32];
                    rand::rngs::OsRng.fill_bytes(&mut k);
                    hex::encode(k)
                })
            })
            .wait()?;
        let db_dialect = db.dialect();
        let inner = Arc::new(Inner {
            db,
            keyring,
            contexts: crate::contexts::ContextStore::new(&cfg.credential, &cfg.types),
            cfg,
            slots: Mutex::new(Slots {
                next: next_seq,
                end: next_seq,
                floor: next_seq.div_ceil(SLOT_BLOCK),
            }),
            status_lists: Mutex::new(HashMap::new()),
            status_generation: AtomicU64::new(0),
            lookup_key,
            hooks,
            merging: (db_dialect == divoc_storage::sql::Dialect::Postgres)
                .then(|| Arc::new(Mutex::new(Vec::new()))),
        });
        // Hosts sharing a PostgreSQL database announce status changes:
        // another host's revocation makes this one's signed lists stale.
        let weak = Arc::downgrade(&inner);
        inner.db.on_change(
            store::STATUS_CHANNEL,
            Arc::new(move |_| {
                if let Some(inner) = weak.upgrade() {
                    inner.status_generation.fetch_add(1, Ordering::AcqRel);
                }
            }),
        );
        Ok(CertificateService { inner })
    }

    /// The issuer's keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    /// The current time by the service's clock, ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.inner.cfg.clock.now_ms()
    }

    /// The deployment's time zone.
    pub fn zone(&self) -> &Zone {
        &self.inner.cfg.zone
    }

    /// Validates a request as issuance would (every bad field, by path),
    /// as of now in the deployment's zone.
    pub fn validate(&self, req: &IssueRequest) -> Result<(), CertError> {
        req.validate_at(self.now_ms(), &self.inner.cfg.zone)
            .map_err(CertError::Validation)
    }

    fn certificate(&self, r: store::CertificateRecord) -> Certificate {
        Certificate::from_record(r, self.now_ms())
    }

    /// The next status index of this host's leased block, leasing a new
    /// block (one write per [`SLOT_BLOCK`] certificates) when it is used
    /// up. Hosts sharing a database lease different blocks, so no two
    /// certificates get one slot and no row is written per certificate.
    fn allocate_status_index(&self) -> Result<u64, CertError> {
        let mut slots = self.inner.slots.lock();
        if slots.next == slots.end {
            let floor = slots.floor;
            let host = host_name();
            let now = self.now_ms();
            let block = self
                .inner
                .db
                .write(move |tx| store::lease_status_block(tx, floor, &host, now))
                .wait()?;
            slots.next = block * SLOT_BLOCK;
            slots.end = slots.next + SLOT_BLOCK;
            slots.floor = block + 1;
        }
        let seq = slots.next;
        slots.next += 1;
        Ok(seq / LIST_SIZE * LIST_SIZE + status_list::slot_for_sequence(seq % LIST_SIZE))
    }

    fn lookup_hash(&self, contact: &str, dob: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.inner.lookup_key.as_bytes());
        h.update(b"\0contact\0");
        h.update(normalize_contact(contact).as_bytes());
        h.update(b"\0");
        h.update(dob.as_bytes());
        hex::encode(h.finalize())
    }

    /// The payment idempotency reference of a dose: keyed like the lookup
    /// hashes, so a payment provider learns nothing about the recipient.
    fn charge_reference(&self, program: &str, code: &str, dose: u32) -> String {
        let mut h = Sha256::new();
        h.update(self.inner.lookup_key.as_bytes());
        h.update(b"\0charge\0");
        h.update(program.as_bytes());
        h.update(b"\0");
        h.update(code.as_bytes());
        h.update(b"\0");
        h.update(dose.to_string().as_bytes());
        format!("divoc-{}", &hex::encode(h.finalize())[..32])
    }

    fn conflict(id: String) -> CertError {
        CertError::Conflict {
            message: "a different certificate was already issued for this program, \
                      pre-enrolment code and dose; correct it instead"
                .into(),
            correction_path: Some(format!("/v1/certificates/{id}")),
            existing_id: Some(id),
        }
    }

    /// Validate, check the identity, check for a previous issue, take
    /// payment, then sign. Signing happens outside the writer thread so
    /// group commits stay short.
    fn prepare(&self, req: &IssueRequest, actor: &str, existing: Existing<'_>) -> Step {
        let inner = &self.inner;
        if let Err(e) = self.validate(req) {
            return Step::Done(Err(e));
        }
        // One form of the vaccination time (UTC) for the hash, the stored
        // request and the credential: `+05:30` and `Z` of the same instant
        // are the same certificate.
        let mut normalized_date = req.clone();
        normalized_date.normalize(&inner.cfg.zone);
        let req = &normalized_date;
        // Identity first, so the canonical number is what the payload hash
        // and the credential carry ("1234 5678" and "12345678" are the same
        // person). A plugin call per re-send is the price; payment below
        // is only asked for new certificates.
        let identity = &req.recipient.identity;
        let claim = IdentityClaim {
            id_type: &identity.kind,
            value: &identity.value,
            name: &req.recipient.name,
            dob: req.recipient.dob.as_deref(),
        };
        let normalized_req;
        let req = match hooks::identity_outcome(inner.hooks.check_identity(&claim), &identity.kind)
        {
            Err(e) => return Step::Done(Err(e)),
            Ok(Some(id)) if id != identity.value => {
                let mut r = req.clone();
                r.recipient.identity.value = id;
                normalized_req = r;
                &normalized_req
            }
            Ok(_) => req,
        };
        let hash = match payload_hash(req) {
            Ok(h) => h,
            Err(e) => return Step::Done(Err(e)),
        };
        let (program, code, dose) = (
            &req.vaccination.program,
            &req.pre_enrollment_code,
            req.vaccination.dose,
        );
        let read = || {
            inner
                .db
                .read(|r| store::precheck(r, program, code, dose, &hash))
        };
        let found = match existing {
            Existing::Skip => None,
            Existing::Read => Some(read()),
            Existing::Known(known) => Some(match known.precheck(program, code, dose, &hash) {
                Some(outcome) => Ok(outcome),
                None => read(),
            }),
        };
        if let Some(found) = found {
            match found {
                Err(e) => return Step::Done(Err(e.into())),
                Ok(Some(InsertOutcome::Existing(id))) => {
                    return Step::Done(Ok(Issued {
                        id,
                        status: IssueStatus::Existing,
                    }))
                }
                Ok(Some(InsertOutcome::Conflict(id))) => {
                    return Step::Done(Err(Self::conflict(id)))
                }
                Ok(_) => {}
            }
        }
        let reference = self.charge_reference(program, code, dose);
        let payment = match hooks::payment_outcome(inner.hooks.check_payment(&PaymentClaim {
            reference: &reference,
            program,
            payment: req.payment.as_ref(),
        })) {
            Ok(p) => p,
            Err(e) => return Step::Done(Err(e)),
        };
        let id = generate_certificate_id().to_string();
        let status_index = match self.allocate_status_index() {
            Ok(i) => i,
            Err(e) => return Step::Done(Err(e)),
        };
        let now = self.now_ms();
        // Written as canonical JSON from the request (`template`), signed,
        // and stored as that text: no `Value` on the issuing path.
        let canonical = match crate::template::canonical_credential(
            req,
            &CredentialParams {
                certificate_id: &id,
                issuer: inner.keyring.did(),
                issued_at_ms: now,
                status_index,
            },
            &inner.cfg.credential,
        ) {
            Ok(c) => c,
            Err(e) => return Step::Done(Err(e)),
        };
        let signed = match crate::template::sign_canonical(canonical, &inner.keyring) {
            Ok(s) => s,
            Err(e) => return Step::Done(Err(e)),
        };
        let lookup_hashes = match &req.recipient.dob {
            Some(dob) => req
                .recipient
                .contacts
                .iter()
                .map(|c| self.lookup_hash(c, dob))
                .collect(),
            None => Vec::new(),
        };
        let new = PreparedCertificate::from_credential_json(
            NewCertificate {
                id,
                program: program.clone(),
                recipient_ref: code.clone(),
                dose,
                facility_id: req.facility.id.clone(),
                payload_hash: hash,
                status_index,
                credential: Value::Null,
                lookup_hashes,
                contacts: req.recipient.contacts.clone(),
                channels: inner.cfg.distribution_channels.clone(),
                actor: actor.to_owned(),
                issued_at_ms: now,
                counts: crate::stats::issue_counts(req, now, &inner.cfg.zone),
            },
            signed,
        );
        match new {
            Ok(new) => Step::Store(Box::new(Prepared { new, payment })),
            Err(e) => Step::Done(Err(e.into())),
        }
    }

    ///
    /// On PostgreSQL the certificates of concurrent requests are stored
    /// together: the first to arrive queues a write, the ones arriving
    /// before the writer runs it join it, and the write stores them all
    /// as a batch ([`store::insert_many_with`]: one statement per table
    /// instead of about seven round trips per certificate). Each gets the
    /// outcome it would get alone, once the group has committed.
    fn store(&self, p: Prepared) -> PendingWrite<InsertOutcome> {
        let db = &self.inner.db;
        let Some(merging) = &self.inner.merging else {
            return db.write(move |tx| store_prepared(tx, &p));
        };
        let (answer, pending) = db.answer_later();
        let first = {
            let mut waiting = merging.lock();
            waiting.push((p, answer));
            waiting.len() == 1
        };
        if first {
            // The write takes whoever waits when it runs; its answers are
            // kept apart so `then` can reach them after the commit.
            let (queue, taken) = (Arc::clone(merging), Arc::new(Mutex::new(None)));
            let (queue_then, taken_then) = (Arc::clone(&queue), Arc::clone(&taken));
            db.write_then(
                move |tx| {
                    let (many, answers): (Vec<Prepared>, Vec<_>) =
                        std::mem::take(&mut *queue.lock()).into_iter().unzip();
                    *taken.lock() = Some(answers);
                    let certs: Vec<&PreparedCertificate> = many.iter().map(|p| &p.new).collect();
                    store::insert_many_with(tx, &certs, |tx, i| {
                        record_payment(tx, many[i].new.certificate(), many[i].payment.as_ref())
                    })
                },
                move |result| {
                    // Not run (the writer is gone): the waiters are still
                    // in the queue, and no other write has taken them.
                    let answers = taken_then.lock().take().unwrap_or_else(|| {
                        std::mem::take(&mut *queue_then.lock())
                            .into_iter()
                            .map(|(_, a)| a)
                            .collect()
                    });
                    answer_all(answers, result);
                },
            );
        }
        pending
    }

    /// Stores many prepared certificates as one work item of the writer
    /// (see [`store::insert_many`]): one savepoint for the lot instead of
    /// one each.
    fn store_many(
        &self,
        many: Vec<Prepared>,
    ) -> PendingWrite<Vec<divoc_storage::Result<InsertOutcome>>> {
        self.inner.db.write(move |tx| {
            let certs: Vec<&PreparedCertificate> = many.iter().map(|p| &p.new).collect();
            store::insert_many_with(tx, &certs, |tx, i| {
                record_payment(tx, many[i].new.certificate(), many[i].payment.as_ref())
            })
        })
    }

    fn finish(
        id: String,
        outcome: divoc_storage::Result<InsertOutcome>,
    ) -> Result<Issued, CertError> {
        match outcome? {
            InsertOutcome::Created => {
                tracing::debug!(certificate = %id, "certificate issued");
                Ok(Issued {
                    id,
                    status: IssueStatus::Created,
                })
            }
            InsertOutcome::Existing(id) => Ok(Issued {
                id,
                status: IssueStatus::Existing,
            }),
            InsertOutcome::Conflict(id) => Err(Self::conflict(id)),
        }
    }

    /// Issues one certificate. `Ok` means committed to disk.
    pub fn issue(&self, req: &IssueRequest, actor: &str) -> Result<Issued, CertError> {
        match self.prepare(req, actor, Existing::Read) {
            Step::Done(r) => r,
            Step::Store(p) => {
                let id = p.new.certificate().id.clone();
                Self::finish(id, self.store(*p).wait())
            }
        }
    }

    /// Issues one certificate, and runs `alongside` in the same
    /// transaction right after the certificate is stored (a caller's own
    /// records of the vaccination: a rollout's dose, appointment and daily
    /// count), so both are on disk or neither is. If `alongside` fails, the
    /// certificate is not stored and its error is returned as
    /// [`CertError::Storage`]. An idempotent re-issue (the same request
    /// again) answers the existing certificate without running it: it ran
    /// when the certificate was made.
    pub fn issue_alongside(
        &self,
        req: &IssueRequest,
        actor: &str,
        alongside: Alongside,
    ) -> Result<Issued, CertError> {
        match self.prepare(req, actor, Existing::Read) {
            Step::Done(r) => r,
            Step::Store(p) => {
                let id = p.new.certificate().id.clone();
                let stored_id = id.clone();
                let outcome = self
                    .inner
                    .db
                    .write(move |tx| {
                        let outcome = store_prepared(tx, &p)?;
                        if outcome == InsertOutcome::Created {
                            alongside(tx, &stored_id)?;
                        }
                        Ok(outcome)
                    })
                    .wait();
                Self::finish(id, outcome)
            }
        }
    }

    /// Whether certificates of `program` are charged for (a price is
    /// configured in `[certificates.programs.<program>.payment]`).
    pub fn charges(&self, program: &str) -> bool {
        self.inner.hooks.charges(program)
    }

    /// Checks an identity document through the issue hooks (the identity
    /// provider plugin for its type), as issuance does: `Ok(Some(number))`
    /// verified (as the provider writes it), `Ok(None)` when no check is
    /// configured for the type, a refusal otherwise.
    pub fn check_identity(&self, claim: &IdentityClaim<'_>) -> Result<Option<String>, CertError> {
        hooks::identity_outcome(self.inner.hooks.check_identity(claim), claim.id_type)
    }

    /// Whether [`issue_async`](Self::issue_async) may issue `req` on an
    /// async runtime's thread: no issue hook can block for its identity
    /// type and program (see [`IssueHooks::may_block`]).
    pub fn issues_inline(&self, req: &IssueRequest) -> bool {
        !self
            .inner
            .hooks
            .may_block(&req.recipient.identity.kind, &req.vaccination.program)
    }

    /// [`issue`](Self::issue) for async callers: prepares and signs on the
    /// calling thread (tens of microseconds of CPU, and a pooled read for
    /// the re-send check) and awaits the group commit instead of blocking a
    /// thread on it. Call it on a runtime thread only when
    /// [`issues_inline`](Self::issues_inline) for `req`; otherwise use `issue` on a
    /// blocking thread, since identity and payment checks call plugins.
    pub async fn issue_async(&self, req: &IssueRequest, actor: &str) -> Result<Issued, CertError> {
        self.complete(self.prepare(req, actor, Existing::Read))
            .await
    }

    /// Stores a prepared step and awaits its group commit.
    async fn complete(&self, step: Step) -> Result<Issued, CertError> {
        match step {
            Step::Done(r) => r,
            Step::Store(p) => {
                let id = p.new.certificate().id.clone();
                Self::finish(id, self.store(*p).await)
            }
        }
    }

    /// [`issue`](Self::issue) for an async caller whose pipeline calls
    /// plugins: the checks, plugin calls and signing run on a blocking
    /// thread, and the group commit is awaited without holding one. With
    /// many requests in flight, a blocking thread per request waiting for
    /// the writer was most of the server's memory (docs/PERFORMANCE.md,
    /// § Memory).
    pub async fn issue_offloaded(
        &self,
        req: IssueRequest,
        actor: String,
    ) -> Result<Issued, CertError> {
        let svc = self.clone();
        let step = tokio::task::spawn_blocking(move || svc.prepare(&req, &actor, Existing::Read))
            .await
            .map_err(|e| CertError::Internal(format!("issuing task failed: {e}")))?;
        self.complete(step).await
    }

    /// Issues many; all writes are queued before waiting, so the writer
    /// commits them in as few group transactions as its batch size allows.
    /// One result per request, in order. Duplicates inside the batch
    /// resolve like re-sends: the first is created, the rest are
    /// `Existing` (same payload) or conflicts.
    pub fn issue_batch(
        &self,
        reqs: &[IssueRequest],
        actor: &str,
    ) -> Vec<Result<Issued, CertError>> {
        let mut results: Vec<Option<Result<Issued, CertError>>> = Vec::with_capacity(reqs.len());
        let mut to_store = Vec::new();
        let mut slots = Vec::new();
        // Re-sends found with one read for the batch (on PostgreSQL one
        // round trip instead of one per certificate); should it fail, each
        // certificate reads its own and meets the error there.
        let doses: Vec<(&str, &str, u32)> = reqs
            .iter()
            .map(|r| {
                let v = &r.vaccination;
                (v.program.as_str(), r.pre_enrollment_code.as_str(), v.dose)
            })
            .collect();
        let known = self.inner.db.read(|r| store::stored_doses(r, &doses)).ok();
        let existing = known.as_ref().map_or(Existing::Read, Existing::Known);
        for req in reqs {
            match self.prepare(req, actor, existing) {
                Step::Done(r) => results.push(Some(r)),
                Step::Store(p) => {
                    slots.push((results.len(), p.new.certificate().id.clone()));
                    results.push(None);
                    to_store.push(*p);
                }
            }
        }
        if !to_store.is_empty() {
            match self.store_many(to_store).wait() {
                Ok(outcomes) => {
                    for ((slot, id), outcome) in slots.into_iter().zip(outcomes) {
                        results[slot] = Some(Self::finish(id, outcome));
                    }
                }
                Err(e) => {
                    // The whole work item failed (the writer is gone):
                    // nothing of it was stored.
                    let message = format!("storage: {e}");
                    let mut first = Some(CertError::from(e));
                    for (slot, _) in slots {
                        let err = first
                            .take()
                            .unwrap_or_else(|| CertError::Internal(message.clone()));
                        results[slot] = Some(Err(err));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(CertError::Internal("certificate not stored".into()))))
            .collect()
    }

    /// Issues a credential of an operator-defined type (see
    /// [`crate::types`]): validate against its schema → re-send check on
    /// (type, reference) → build, sign → one transaction, like a
    /// vaccination certificate. Stored under the program `type:<name>`
    /// (vaccination programs cannot contain `:`), dose 1, so reads,
    /// status changes, status lists and verification work unchanged.
    pub fn issue_typed(
        &self,
        type_name: &str,
        request: &Value,
        facility_id: Option<String>,
        actor: &str,
    ) -> Result<Issued, CertError> {
        let inner = &self.inner;
        let ty = inner
            .cfg
            .types
            .get(type_name)
            .ok_or_else(|| CertError::NotFound(format!("credential type `{type_name}`")))?;
        let typed = ty
            .validate(request, &inner.cfg.zone)
            .map_err(CertError::Validation)?;
        let canonical = divoc_crypto::jcs::canonicalize_to_vec(&serde_json::json!({
            "type": type_name,
            "facility": facility_id,
            "values": typed.values,
        }))
        .map_err(|e| CertError::Internal(e.to_string()))?;
        let hash = hex::encode(Sha256::digest(canonical));
        let program = format!("type:{type_name}");
        let code = typed.reference.clone();
        match inner
            .db
            .read(|r| store::precheck(r, &program, &code, 1, &hash))?
        {
            Some(InsertOutcome::Existing(id)) => {
                return Ok(Issued {
                    id,
                    status: IssueStatus::Existing,
                })
            }
            Some(InsertOutcome::Conflict(id)) => return Err(Self::conflict(id)),
            _ => {}
        }
        let id = generate_certificate_id().to_string();
        let status_index = self.allocate_status_index()?;
        let now = self.now_ms();
        let unsigned = ty.build_credential(
            type_name,
            &typed,
            &id,
            inner.keyring.did(),
            now,
            credential::status_entries(&inner.cfg.credential, status_index),
            &inner.cfg.credential,
        );
        let signed = credential::sign_owned(unsigned, &inner.keyring)?;
        let lookup_hashes = match (&typed.contact, &typed.dob) {
            (Some(c), Some(d)) => vec![self.lookup_hash(c, d)],
            _ => Vec::new(),
        };
        let new = NewCertificate {
            id: id.clone(),
            counts: crate::stats::typed_counts(&program, now, &inner.cfg.zone),
            program,
            recipient_ref: code,
            dose: 1,
            facility_id,
            payload_hash: hash,
            status_index,
            credential: signed,
            lookup_hashes,
            contacts: typed.contact.into_iter().collect(),
            channels: inner.cfg.distribution_channels.clone(),
            actor: actor.to_owned(),
            issued_at_ms: now,
        };
        let new = PreparedCertificate::new(new)?;
        let outcome = inner
            .db
            .write(move |tx| store::insert_prepared(tx, &new))
            .wait();
        Self::finish(id, outcome)
    }

    /// The names of the configured credential types.
    pub fn credential_types(&self) -> Vec<String> {
        self.inner.cfg.types.keys().cloned().collect()
    }

    /// The JSON-LD context documents our credentials name, by URL.
    pub fn contexts(&self) -> &crate::contexts::ContextStore {
        &self.inner.contexts
    }

    /// The context served at `/v1/contexts/{name}`: a configured type's
    /// generated context, or `vaccination-v1` (our vocabulary, whose
    /// canonical URL is [`credential::VACCINATION_CONTEXT_URL`]).
    pub fn context_document(&self, name: &str) -> Option<&Value> {
        let url = if name == crate::contexts::VACCINATION_CONTEXT_NAME {
            credential::VACCINATION_CONTEXT_URL.to_owned()
        } else {
            crate::contexts::type_context_url(&self.inner.cfg.credential, name)
        };
        self.inner.contexts.get(&url)
    }

    /// The bytes `/v1/contexts/{name}` serves for a context (see
    /// [`CertificateService::context_document`]): pretty JSON, the same
    /// bytes every time, so their hash is a stable `ETag` and pin.
    pub fn context_bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.context_document(name)
            .and_then(|doc| serde_json::to_vec_pretty(doc).ok())
    }

    /// Every JSON-LD context this deployment's credentials name, for
    /// verifiers to vendor: its URL, the name this server serves a copy
    /// under (none for the W3C base context, which W3C serves), and the
    /// SHA-256 of the bytes served (of the vendored W3C file for the base).
    pub fn context_index(&self) -> Vec<ContextInfo> {
        let digest = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
        let mut index = vec![ContextInfo {
            url: crate::credential::CREDENTIALS_V2.to_owned(),
            name: None,
            served: None,
            sha256: digest(crate::contexts::CREDENTIALS_V2_CONTEXT.as_bytes()),
        }];
        let names = std::iter::once(crate::contexts::VACCINATION_CONTEXT_NAME)
            .chain(self.inner.cfg.types.keys().map(String::as_str));
        for name in names {
            let Some(bytes) = self.context_bytes(name) else {
                continue;
            };
            let url = if name == crate::contexts::VACCINATION_CONTEXT_NAME {
                credential::VACCINATION_CONTEXT_URL.to_owned()
            } else {
                crate::contexts::type_context_url(&self.inner.cfg.credential, name)
            };
            index.push(ContextInfo {
                url,
                name: Some(name.to_owned()),
                served: Some(crate::contexts::type_context_url(
                    &self.inner.cfg.credential,
                    name,
                )),
                sha256: digest(&bytes),
            });
        }
        index
    }

    /// The certificate (with its signed credential), its status as of now.
    pub fn get(&self, id: &str) -> Result<Certificate, CertError> {
        self.inner
            .db
            .read(|r| store::get(r, id))?
            .map(|r| self.certificate(r))
            .ok_or_else(|| CertError::NotFound(format!("certificate {id}")))
    }

    /// Every certificate of a pre-enrolment code (all doses and versions).
    pub fn by_pre_enrollment(&self, code: &str) -> Result<Vec<Certificate>, CertError> {
        let rows = self.inner.db.read(|r| store::by_recipient_ref(r, code))?;
        Ok(rows.into_iter().map(|r| self.certificate(r)).collect())
    }

    /// Certificates of the recipient with this contact and date of birth.
    pub fn by_contact(&self, contact: &str, dob: &str) -> Result<Vec<Certificate>, CertError> {
        let h = self.lookup_hash(contact, dob);
        let rows = self.inner.db.read(|r| store::by_lookup(r, &h))?;
        Ok(rows.into_iter().map(|r| self.certificate(r)).collect())
    }

    /// All versions of the dose `id` belongs to, oldest first.
    pub fn history(&self, id: &str) -> Result<Vec<Certificate>, CertError> {
        let h = self.inner.db.read(|r| store::history(r, id))?;
        if h.is_empty() {
            return Err(CertError::NotFound(format!("certificate {id}")));
        }
        Ok(h.into_iter().map(|r| self.certificate(r)).collect())
    }

    /// Applies a status change under the status rules
    /// ([`rules::decide`]), deciding on the row as it is inside the write
    /// transaction, so two concurrent changes cannot both pass a check.
    fn change(
        &self,
        id: &str,
        change: StatusChange,
        actor: &str,
    ) -> Result<Certificate, CertError> {
        let (id_owned, actor) = (id.to_owned(), actor.to_owned());
        let clock = self.inner.cfg.clock.clone();
        let zone = self.inner.cfg.zone.clone();
        let outcome = self
            .inner
            .db
            .write(move |tx| {
                let now = clock.now_ms();
                let Some(row) = store::get(&tx.reader(), &id_owned)? else {
                    return Ok(Err(None));
                };
                let counts = crate::stats::status_counts(&row.program, now, &zone);
                let current = Certificate::from_record(row, now);
                match rules::decide(&id_owned, current.status, &change) {
                    Decision::Unchanged => Ok(Ok(())),
                    Decision::NotAllowed(why) => Ok(Err(Some(why))),
                    Decision::Write {
                        status,
                        until_ms,
                        reason,
                        action,
                        detail,
                    } => {
                        store::write_status(
                            tx,
                            &id_owned,
                            &StatusWrite {
                                status,
                                suspended_until_ms: until_ms,
                                revoked_reason: reason.as_deref(),
                                at_ms: now,
                                actor: &actor,
                                action,
                                detail: &detail,
                                counts: &counts,
                            },
                        )?;
                        Ok(Ok(()))
                    }
                }
            })
            .wait();
        self.statuses_changed();
        match outcome? {
            Ok(()) => self.get(id),
            Err(None) => Err(CertError::NotFound(format!("certificate {id}"))),
            Err(Some(message)) => Err(CertError::Conflict {
                message,
                existing_id: Some(id.to_owned()),
                correction_path: None,
            }),
        }
    }

    /// Revokes permanently.
    pub fn revoke(&self, id: &str, reason: &str, actor: &str) -> Result<Certificate, CertError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 256 {
            return Err(CertError::field(
                "reason",
                "required, at most 256 characters",
            ));
        }
        self.change(
            id,
            StatusChange::Revoke {
                reason: reason.to_owned(),
            },
            actor,
        )
    }

    /// Suspends until `until` (`YYYY-MM-DD`, an RFC 3339 date-time with
    /// any offset, or a local date-time in the deployment's zone; `None` =
    /// until reinstated). The suspension lifts by itself at that time.
    pub fn suspend(
        &self,
        id: &str,
        until: Option<&str>,
        actor: &str,
    ) -> Result<Certificate, CertError> {
        let until_ms = match until {
            None => None,
            Some(s) => match divoc_time::parse_instant(s, &self.inner.cfg.zone) {
                Some(t) if t > self.now_ms() => Some(t),
                Some(_) => return Err(CertError::field("until", "is in the past")),
                None => {
                    return Err(CertError::field(
                        "until",
                        "must be YYYY-MM-DD or an RFC 3339 date-time",
                    ))
                }
            },
        };
        self.change(id, StatusChange::Suspend { until_ms }, actor)
    }

    /// Lifts a suspension.
    pub fn reinstate(&self, id: &str, actor: &str) -> Result<Certificate, CertError> {
        self.change(id, StatusChange::Reinstate, actor)
    }

    /// Issues a corrected version of `id` (same program, pre-enrolment code
    /// and dose) and revokes `id` as `superseded`. Only the current,
    /// unrevoked version may be corrected, at most `max-corrections` times
    /// ([`rules::may_correct`], decided inside the write transaction).
    pub fn correct(&self, id: &str, req: &IssueRequest, actor: &str) -> Result<Issued, CertError> {
        let p = match self.prepare(req, actor, Existing::Skip) {
            Step::Done(r) => return r,
            Step::Store(p) => p,
        };
        let (old, max, new, payment) = (
            id.to_owned(),
            self.inner.cfg.max_corrections,
            p.new,
            p.payment,
        );
        let clock = self.inner.cfg.clock.clone();
        let new_id = new.certificate().id.clone();
        let outcome = self
            .inner
            .db
            .write(move |tx| {
                let Some(row) = store::get(&tx.reader(), &old)? else {
                    return Ok(Err(None));
                };
                let current = Certificate::from_record(row, clock.now_ms());
                let c = new.certificate();
                if let Err(why) =
                    rules::may_correct(&current, &c.program, &c.recipient_ref, c.dose, max)
                {
                    return Ok(Err(Some(why)));
                }
                store::insert_correction(tx, &new, current.version + 1, &old)?;
                record_payment(tx, new.certificate(), payment.as_ref())?;
                Ok(Ok(()))
            })
            .wait();
        self.statuses_changed();
        match outcome? {
            Ok(()) => Ok(Issued {
                id: new_id,
                status: IssueStatus::Created,
            }),
            Err(None) => Err(CertError::NotFound(format!("certificate {id}"))),
            Err(Some(message)) => Err(CertError::Conflict {
                message,
                existing_id: Some(id.to_owned()),
                correction_path: None,
            }),
        }
    }

    /// The signed `BitstringStatusListCredential` for `list_id`
    /// (`revocation-N` or `suspension-N`), built and signed now.
    pub fn status_list(&self, list_id: &str) -> Result<Value, CertError> {
        Ok(self.build_status_list(list_id)?.0)
    }

    /// The signed status list for `list_id`, serialized, with its ETag:
    /// what `GET /v1/status/{list}` serves.
    ///
    /// Verifiers poll these lists all the time, and building one reads
    /// every non-valid certificate of its range and signs, so a built list
    /// is kept and served again until a status may have changed (a
    /// revocation, suspension, reinstatement or correction through this
    /// service), the next suspension in it lifts, or its `ttl` passes.
    /// Only lists whose range the allocator has reached are kept, so
    /// requests for made-up list numbers cannot fill memory.
    pub fn signed_status_list(&self, list_id: &str) -> Result<Arc<SignedStatusList>, CertError> {
        let now = self.now_ms();
        // Read before building: a change committed after this read bumps
        // the generation, so a list built from an older snapshot is never
        // taken for current.
        let generation = self.inner.status_generation.load(Ordering::Acquire);
        if let Some(list) = self.current_status_list(list_id, generation, now) {
            return Ok(list);
        }
        let (credential, next_lift, lo) = self.build_status_list(list_id)?;
        let etag = credential
            .get("credentialSubject")
            .and_then(|s| s.get("encodedList"))
            .and_then(Value::as_str)
            .map(|bits| {
                // Weak (RFC 9110 §8.8.1): the bits name the content; the
                // signature and `validFrom` differ between builds.
                let digest = Sha256::digest(bits.as_bytes());
                format!("W/\"{}\"", hex::encode(&digest[..16]))
            })
            .ok_or_else(|| CertError::Internal("status list without encodedList".into()))?;
        let body =
            serde_json::to_string(&credential).map_err(|e| CertError::Internal(e.to_string()))?;
        let ttl = self.inner.cfg.status_list_ttl_ms;
        let list = Arc::new(SignedStatusList {
            body,
            etag,
            max_age_s: u64::try_from(ttl / 1000).unwrap_or(0),
        });
        if lo <= self.inner.slots.lock().next {
            let refresh_at_ms = next_lift.map_or(now + ttl, |t| t.min(now + ttl));
            self.inner.status_lists.lock().insert(
                list_id.to_owned(),
                CachedList {
                    list: list.clone(),
                    generation,
                    refresh_at_ms,
                },
            );
        }
        Ok(list)
    }

    /// The kept list for `list_id` if it is still current: what
    /// [`signed_status_list`](Self::signed_status_list) answers without
    /// building. Never blocks, so async callers may ask first.
    pub fn cached_status_list(&self, list_id: &str) -> Option<Arc<SignedStatusList>> {
        let generation = self.inner.status_generation.load(Ordering::Acquire);
        self.current_status_list(list_id, generation, self.now_ms())
    }

    fn current_status_list(
        &self,
        list_id: &str,
        generation: u64,
        now: i64,
    ) -> Option<Arc<SignedStatusList>> {
        let lists = self.inner.status_lists.lock();
        let cached = lists.get(list_id)?;
        (cached.generation == generation && now < cached.refresh_at_ms).then(|| cached.list.clone())
    }

    /// Marks every cached status list stale. Called after each status
    /// write, whether or not it succeeded (a failed write costs a rebuild,
    /// nothing more).
    fn statuses_changed(&self) {
        self.inner.status_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Builds and signs `list_id`'s list as of now; also returns when the
    /// earliest suspension in its range lifts, and the list's first index.
    fn build_status_list(&self, list_id: &str) -> Result<(Value, Option<i64>, u64), CertError> {
        let (purpose, n) = StatusPurpose::parse_list_id(list_id)
            .ok_or_else(|| CertError::NotFound(format!("status list {list_id}")))?;
        let lo = n
            .checked_mul(LIST_SIZE)
            .ok_or_else(|| CertError::NotFound(format!("status list {list_id}")))?;
        let now = self.now_ms();
        let entries = self
            .inner
            .db
            .read(|r| store::status_entries(r, lo, lo + LIST_SIZE))?;
        let mut bits = Bitstring::default();
        let mut next_lift: Option<i64> = None;
        for (index, stored, until) in entries {
            let status = rules::effective_status(stored, until, now);
            if status == Status::Suspended {
                if let Some(u) = until {
                    next_lift = Some(next_lift.map_or(u, |n| n.min(u)));
                }
            }
            let set = match purpose {
                StatusPurpose::Revocation => status == Status::Revoked,
                StatusPurpose::Suspension => status == Status::Suspended,
            };
            if set {
                bits.set(index - lo);
            }
        }
        let url = self.inner.cfg.credential.status_list_url(list_id);
        let unsigned = status_list::status_list_credential(
            &url,
            self.inner.keyring.did(),
            purpose,
            &bits,
            now,
            self.inner.cfg.status_list_ttl_ms,
        )?;
        Ok((
            credential::sign(&unsigned, &self.inner.keyring)?,
            next_lift,
            lo,
        ))
    }

    /// Verifies a credential or QR text against this issuer's keys (active
    /// and retired) and the live status in the database. A status read that
    /// fails is [`CertError::Unavailable`], never a verdict.
    pub fn verify(&self, input: VerifyInput) -> Result<Verdict, CertError> {
        let db = &self.inner.db;
        self.verify_with(input, &|id| {
            db.read(|r| store::status_of(r, id))
                .map_err(|e| StatusUnavailable(e.to_string()))
        })
    }

    /// Verifies many, in order, reading every status from one snapshot (one
    /// pooled read transaction instead of one per credential). An input
    /// that cannot be decoded, or whose status read fails, fails alone.
    pub fn verify_many(&self, inputs: Vec<VerifyInput>) -> Vec<Result<Verdict, CertError>> {
        let count = inputs.len();
        let verdicts = self.inner.db.read(move |r| {
            Ok(inputs
                .into_iter()
                .map(|input| {
                    self.verify_with(input, &|id| {
                        store::status_of(r, id).map_err(|e| StatusUnavailable(e.to_string()))
                    })
                })
                .collect::<Vec<_>>())
        });
        match verdicts {
            Ok(v) => v,
            Err(e) => (0..count)
                .map(|_| Err(CertError::Unavailable(format!("status reads failed: {e}"))))
                .collect(),
        }
    }

    fn verify_with(
        &self,
        input: VerifyInput,
        status_of: &dyn Fn(&str) -> Result<Option<store::StatusRow>, StatusUnavailable>,
    ) -> Result<Verdict, CertError> {
        let credential = match input {
            VerifyInput::Json(v) => v,
            VerifyInput::QrText(t) => qr::decode(&t)?,
        };
        let keyring = &self.inner.keyring;
        let now = self.now_ms();
        let status = DbStatus {
            issuer: keyring.did(),
            status_of,
            now_ms: now,
        };
        verify::verify_credential(
            &credential,
            &|k| keyring.resolve_public_key(k),
            &status,
            now,
        )
        .map_err(|e| CertError::Unavailable(e.to_string()))
    }

    /// The issuer DID.
    pub fn issuer(&self) -> &str {
        self.inner.keyring.did()
    }

    /// Every certificate not in force (revoked, superseded, suspended).
    pub fn withdrawn(&self) -> Result<Vec<divoc_storage::certificates::WithdrawnRow>, CertError> {
        Ok(self.inner.db.read(divoc_storage::certificates::withdrawn)?)
    }

    /// The sequence number of the newest event in the log (0 when empty).
    pub fn event_head(&self) -> Result<i64, CertError> {
        Ok(self.inner.db.read(divoc_storage::events::head)?)
    }

    /// QR text of a stored certificate.
    pub fn qr_text(&self, id: &str) -> Result<String, CertError> {
        qr::encode(&self.get(id)?.credential)
    }
}

/// Records an authorised payment in the audit log, in the transaction that
/// stores its certificate: the receipt (provider, its reference, amount)
/// and never the request's payment reference (a voucher code is a bearer
/// secret); an authorisation not yet captured is queued for capture.
/// One prepared certificate and, if it was created, its payment record.
/// Tells each waiter its certificate's outcome, or the write's error.
fn answer_all(
    answers: Vec<WriteAnswer<InsertOutcome>>,
    result: divoc_storage::Result<Vec<divoc_storage::Result<InsertOutcome>>>,
) {
    match result {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for answer in answers {
                answer.send(outcomes.next().unwrap_or_else(|| {
                    Err(divoc_storage::StorageError::CommitFailed(
                        "the batch answered fewer certificates than it was given".into(),
                    ))
                }));
            }
        }
        Err(e) => {
            let message = e.to_string();
            let mut first = Some(e);
            for answer in answers {
                answer.send(Err(first.take().unwrap_or_else(|| {
                    divoc_storage::StorageError::CommitFailed(message.clone())
                })));
            }
        }
    }
}

fn store_prepared(
    tx: &divoc_storage::Tx<'_>,
    p: &Prepared,
) -> divoc_storage::Result<InsertOutcome> {
    let outcome = store::insert_prepared(tx, &p.new)?;
    if outcome == InsertOutcome::Created {
        record_payment(tx, p.new.certificate(), p.payment.as_ref())?;
    }
    Ok(outcome)
}

fn record_payment(
    tx: &divoc_storage::Tx<'_>,
    new: &NewCertificate,
    receipt: Option<&PaymentReceipt>,
) -> divoc_storage::Result<()> {
    let Some(r) = receipt else {
        return Ok(());
    };
    let detail = serde_json::json!({ "certificate_id": new.id, "receipt": r });
    divoc_storage::audit::append_audit(tx, &new.actor, "certificate.payment", &new.id, &detail)?;
    // Authorised only: capture it now that the certificate exists (the
    // capture worker in `divoc serve`, retried from the outbox).
    if r.status == "authorized" {
        let capture = serde_json::json!({
            "certificate_id": new.id,
            "provider_reference": r.provider_reference,
            "currency": r.currency,
            "amount_minor_units": r.amount_minor_units,
        });
        divoc_storage::outbox::enqueue(
            tx,
            store::PAYMENT_CAPTURE,
            &r.provider,
            &capture,
            new.issued_at_ms,
        )?;
    }
    Ok(())
}

/// Status straight from the issuer's records, found by the certificate
/// itself: its id (from the credential's `id`), then its status index,
/// which must be the one its status entries name. The list URLs' host is
/// not compared with today's configuration: an operator may have moved the
/// service to another `public-url` since it was issued. Anything that does
/// not add up is "unknown", never "good".
struct DbStatus<'a> {
    issuer: &'a str,
    /// Reads a certificate's status row.
    status_of: &'a dyn Fn(&str) -> Result<Option<store::StatusRow>, StatusUnavailable>,
    now_ms: i64,
}

impl StatusSource for DbStatus<'_> {
    fn status(
        &self,
        credential: &Value,
        entries: &[StatusEntry<'_>],
    ) -> Result<KnownStatus, StatusUnavailable> {
        if credential.get("issuer").and_then(Value::as_str) != Some(self.issuer) {
            return Ok(KnownStatus::Unknown("not issued by this service".into()));
        }
        let Some(id) = credential::certificate_id_of(credential) else {
            return Ok(KnownStatus::Unknown(
                "the credential carries no certificate id of this service".into(),
            ));
        };
        // Only the status columns: parsing the stored credential would cost
        // more than the signature check.
        let Some(row) = (self.status_of)(id)? else {
            return Ok(KnownStatus::Unknown(
                "this service holds no record of the certificate".into(),
            ));
        };
        if entries
            .iter()
            .any(|e| e.global_index() != Some(row.status_index))
        {
            return Ok(KnownStatus::Unknown(
                "the credential's status entries do not match the issuer's record".into(),
            ));
        }
        Ok(match rules::row_status(&row, self.now_ms) {
            Status::Valid => KnownStatus::Good,
            Status::Revoked => KnownStatus::Revoked,
            Status::Suspended => KnownStatus::Suspended,
        })
    }
}
