//! Adapters that back plugin capabilities with the real storage and keys.
//! The runtime defines the traits; this binary is the only place that knows
//! both sides.

use divoc_crypto::keys::es256::Es256Keyring;
use divoc_crypto::keys::Keyring;
use divoc_runtime::{HostKey, KeyAlgorithm, KvBackend, KvError, SignerBackend};
use divoc_storage::{Database, StorageError};

/// Plugin kv in the host's SQLite database, through the group-commit writer:
/// a `set` returns once it is committed.
pub struct StorageKv(pub Database);

fn backend(e: StorageError) -> KvError {
    match e {
        StorageError::QuotaExceeded {
            quota, would_use, ..
        } => KvError::QuotaExceeded { quota, would_use },
        other => KvError::Backend(other.to_string()),
    }
}

impl KvBackend for StorageKv {
    fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.0.kv_get(plugin, key).map_err(backend)
    }

    fn set(&self, plugin: &str, key: &str, value: &[u8], quota_bytes: u64) -> Result<(), KvError> {
        self.0
            .kv_set(plugin, key, value, quota_bytes)
            .wait()
            .map_err(backend)
    }

    fn delete(&self, plugin: &str, key: &str) -> Result<(), KvError> {
        self.0
            .kv_delete(plugin, key)
            .wait()
            .map(|_| ())
            .map_err(backend)
    }

    fn list(&self, plugin: &str, prefix: &str, limit: u32) -> Result<Vec<String>, KvError> {
        self.0
            .kv_list(plugin, prefix, limit as usize)
            .map_err(backend)
    }
}

/// Signing through the issuer's keyrings (Ed25519 and ES256); private keys
/// stay inside them. ES256 key ids are JWK thumbprints and Ed25519 ids are
/// DID URLs, so a key id names one ring.
pub struct KeyringSigner {
    /// The Ed25519 keyring.
    pub ed25519: Keyring,
    /// The ES256 keyring.
    pub es256: Es256Keyring,
}

impl SignerBackend for KeyringSigner {
    fn keys(&self) -> Vec<HostKey> {
        let ed = self.ed25519.public_keys().into_iter().map(|k| HostKey {
            key_id: k.key_id,
            purpose: k.purpose,
            algorithm: KeyAlgorithm::Ed25519,
            public_key: k.public_key.to_vec(),
            active: k.active,
            certificate: None,
        });
        let ec = self.es256.keys().into_iter().map(|k| HostKey {
            key_id: k.kid,
            purpose: k.purpose,
            algorithm: KeyAlgorithm::Es256,
            public_key: k.public_key,
            active: k.active,
            certificate: Some(k.certificate),
        });
        ed.chain(ec).collect()
    }

    fn sign(&self, key_id: &str, data: &[u8]) -> Result<Vec<u8>, String> {
        if self.es256.find(key_id).is_some() {
            return self
                .es256
                .sign(key_id, data)
                .map(|s| s.to_vec())
                .map_err(|e| e.to_string());
        }
        self.ed25519
            .sign(key_id, data)
            .map(|s| s.to_vec())
            .map_err(|e| e.to_string())
    }

    fn verify(&self, key_id: &str, data: &[u8], signature: &[u8]) -> Result<bool, String> {
        if self.es256.find(key_id).is_some() {
            return self
                .es256
                .verify(key_id, data, signature)
                .map_err(|e| e.to_string());
        }
        self.ed25519
            .verify(key_id, data, signature)
            .map_err(|e| e.to_string())
    }
}

/// Programmes' eligibility policies, asked through the plugin runtime: the
/// version serving at the time of each request decides (hot swap).
pub struct RuntimePolicies(pub divoc_runtime::Runtime);

impl divoc_rollout::PolicyPlugins for RuntimePolicies {
    fn evaluate(
        &self,
        name: &str,
        q: &divoc_rollout::EligibilityQuery,
    ) -> Result<divoc_rollout::Decision, String> {
        use divoc_runtime::types::eligibility::{Decision, PreviousDose, Query};
        use divoc_runtime::types::{Identity, Recipient};
        let plugin = self.0.rollout_policy(name).map_err(|e| e.to_string())?;
        let query = Query {
            recipient: Recipient {
                name: q.name.clone(),
                dob: Some(q.dob.clone()),
                age: None,
                gender: Some(q.gender.clone()),
                nationality: q.nationality.clone(),
                identity: Identity {
                    id_type: "national-id".into(),
                    value: q.identity.clone().unwrap_or_default(),
                },
                contacts: Vec::new(),
                address: None,
            },
            program: q.programme.clone(),
            vaccine: q.vaccine.clone(),
            dose: q.dose,
            date: q.date.to_string(),
            previous_doses: q
                .previous_doses
                .iter()
                .map(|(vaccine, dose, date)| PreviousDose {
                    vaccine: vaccine.clone(),
                    dose: *dose,
                    date: date.to_string(),
                })
                .collect(),
        };
        match plugin.evaluate(&query).map_err(|e| e.to_string())? {
            Decision::Allow => Ok(divoc_rollout::Decision::Allow),
            Decision::Deny(reasons) => Ok(divoc_rollout::Decision::Deny(reasons)),
        }
    }
}

/// The plugins' `mail` capability over SMTP (`[mail] smtp-url`).
pub struct SmtpMail {
    transport: lettre::SmtpTransport,
}

impl SmtpMail {
    /// A relay from `[mail]`; `None` when no relay is configured.
    pub fn from_config(config: &crate::config::MailConfig) -> anyhow::Result<Option<SmtpMail>> {
        use anyhow::Context as _;
        let Some(url) = &config.smtp_url else {
            return Ok(None);
        };
        let timeout = std::time::Duration::from_millis(config.timeout_ms.unwrap_or(10_000));
        let transport = lettre::SmtpTransport::from_url(url)
            .context("[mail] smtp-url is not a valid smtp:// or smtps:// URL")?
            .timeout(Some(timeout))
            .build();
        Ok(Some(SmtpMail { transport }))
    }
}

impl divoc_runtime::MailBackend for SmtpMail {
    fn send(&self, mail: &divoc_runtime::OutgoingMail) -> Result<(), divoc_runtime::MailError> {
        use divoc_runtime::MailError;
        use lettre::message::{header, Attachment, Mailbox, MultiPart, SinglePart};
        use lettre::Transport as _;

        let invalid =
            |what: &str, e: &dyn std::fmt::Display| MailError::Invalid(format!("{what}: {e}"));
        let from: Mailbox = mail.from.parse().map_err(|e| invalid("sender", &e))?;
        let mut builder = lettre::Message::builder()
            .from(from)
            .subject(mail.subject.clone())
            .message_id(Some(mail.message_id.clone()));
        for (i, to) in mail.to.iter().enumerate() {
            let to: Mailbox = to.parse().map_err(|e| invalid(&format!("to[{i}]"), &e))?;
            builder = builder.to(to);
        }
        let text = SinglePart::builder()
            .header(header::ContentType::TEXT_PLAIN)
            .body(mail.text.clone());
        let body = match &mail.html {
            Some(html) => MultiPart::alternative()
                .singlepart(text)
                .singlepart(SinglePart::html(html.clone())),
            None => MultiPart::mixed().singlepart(text),
        };
        let mut mixed = MultiPart::mixed().multipart(body);
        for (name, media_type, data) in &mail.attachments {
            let content_type = header::ContentType::parse(media_type)
                .map_err(|e| invalid(&format!("attachment {name}"), &e))?;
            mixed =
                mixed.singlepart(Attachment::new(name.clone()).body(data.clone(), content_type));
        }
        let message = builder
            .multipart(mixed)
            .map_err(|e| invalid("message", &e))?;
        self.transport.send(&message).map(|_| ()).map_err(|e| {
            if e.is_permanent() {
                MailError::Refused(e.to_string())
            } else {
                MailError::Unavailable(e.to_string())
            }
        })
    }
}

/// Certificate-format plugins through the plugin runtime. A plugin's
/// `info()` is asked once per loaded version (keyed by its digest), not on
/// every verification.
pub struct RuntimeFormats {
    runtime: divoc_runtime::Runtime,
    infos: parking_lot::Mutex<
        std::collections::HashMap<String, divoc_certificates::formats::FormatDescriptor>,
    >,
}

impl RuntimeFormats {
    /// Formats served by `runtime`'s certificate-format plugins.
    pub fn new(runtime: divoc_runtime::Runtime) -> RuntimeFormats {
        RuntimeFormats {
            runtime,
            infos: parking_lot::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

fn format_error(e: divoc_runtime::PluginError) -> divoc_certificates::formats::FormatError {
    use divoc_certificates::formats::FormatError;
    use divoc_runtime::{GuestErrorKind, PluginError};
    match e {
        PluginError::NotFound(name) => FormatError::UnknownFormat(name),
        PluginError::Returned { error, .. }
            if matches!(
                error.kind,
                GuestErrorKind::InvalidInput | GuestErrorKind::Rejected
            ) =>
        {
            FormatError::Invalid(error.message)
        }
        e => FormatError::Unavailable(e.to_string()),
    }
}

impl divoc_certificates::formats::FormatPlugins for RuntimeFormats {
    fn formats(&self) -> Vec<divoc_certificates::formats::FormatDescriptor> {
        use divoc_certificates::formats::{ArtifactKind, FormatDescriptor};
        use divoc_runtime::types::format::ArtifactKind as Wit;
        let mut out = Vec::new();
        let mut serving = std::collections::HashSet::new();
        for name in self
            .runtime
            .plugins_of(divoc_runtime::World::CertificateFormat)
        {
            let Ok(handle) = self.runtime.certificate_format(&name) else {
                continue;
            };
            let digest = handle.info().digest.clone();
            serving.insert(digest.clone());
            if let Some(d) = self.infos.lock().get(&digest) {
                out.push(d.clone());
                continue;
            }
            let info = match handle.format_info() {
                Ok(info) => info,
                Err(e) => {
                    tracing::warn!(plugin = %name, error = %e, "format plugin did not describe itself");
                    continue;
                }
            };
            let descriptor = FormatDescriptor {
                id: info.id,
                plugin: name.clone(),
                media_type: info.media_type,
                kind: match info.kind {
                    Wit::QrText => ArtifactKind::QrText,
                    Wit::Json => ArtifactKind::Json,
                    Wit::Binary => ArtifactKind::Binary,
                },
                prefixes: handle.info().format_prefixes.clone(),
            };
            self.infos.lock().insert(digest, descriptor.clone());
            out.push(descriptor);
        }
        out.sort_by(|a, b| a.plugin.cmp(&b.plugin));
        // Forget the descriptions of versions swapped out since.
        self.infos
            .lock()
            .retain(|digest, _| serving.contains(digest));
        out
    }

    fn encode(
        &self,
        format: &divoc_certificates::formats::FormatDescriptor,
        certificate_id: &str,
        credential_json: &str,
        signing_purpose: &str,
    ) -> Result<divoc_certificates::formats::Artifact, divoc_certificates::formats::FormatError>
    {
        use divoc_certificates::formats::Artifact;
        use divoc_runtime::types::format::{ArtifactData, Credential};
        let handle = self
            .runtime
            .certificate_format(&format.plugin)
            .map_err(format_error)?;
        let data = handle
            .encode(&Credential {
                id: certificate_id.to_owned(),
                json: credential_json.to_owned(),
                signing_purpose: signing_purpose.to_owned(),
            })
            .map_err(format_error)?;
        Ok(match data {
            ArtifactData::Text(t) => Artifact::Text(t),
            ArtifactData::Bytes(b) => Artifact::Bytes(b),
        })
    }

    fn decode(
        &self,
        format: &divoc_certificates::formats::FormatDescriptor,
        artifact: &divoc_certificates::formats::Artifact,
    ) -> Result<divoc_certificates::formats::Decoded, divoc_certificates::formats::FormatError>
    {
        use divoc_certificates::formats::{Artifact, Decoded, FormatError};
        use divoc_runtime::types::format::ArtifactData;
        let handle = self
            .runtime
            .certificate_format(&format.plugin)
            .map_err(format_error)?;
        let data = match artifact {
            Artifact::Text(t) => ArtifactData::Text(t.clone()),
            Artifact::Bytes(b) => ArtifactData::Bytes(b.clone()),
        };
        let decoded = handle.decode(&data).map_err(format_error)?;
        let claims: serde_json::Value = serde_json::from_str(&decoded.claims_json)
            .map_err(|e| FormatError::Invalid(format!("the plugin's claims are not JSON: {e}")))?;
        Ok(Decoded {
            claims,
            key_id: decoded.key_id,
            signature_valid: decoded.signature_valid,
        })
    }
}

/// The certificate PDF the distribution worker attaches to a certificate's
/// message: the delivered dose alone (the API's PDF adds the holder's other
/// doses, which may have gone to other contacts) in the default-language
/// template (the message carries no language to pick another).
pub struct DistributionPdf(pub std::sync::Arc<divoc_pdf::PdfRenderer>);

impl DistributionPdf {
    /// The worker's renderer over `pdf`.
    pub fn shared(
        pdf: std::sync::Arc<divoc_pdf::PdfRenderer>,
    ) -> std::sync::Arc<dyn divoc_certificates::distribution::CertificatePdf> {
        std::sync::Arc::new(DistributionPdf(pdf))
    }
}

impl divoc_certificates::distribution::CertificatePdf for DistributionPdf {
    fn render(
        &self,
        record: &divoc_storage::certificates::CertificateRecord,
        qr_text: &str,
    ) -> Result<Option<Vec<u8>>, String> {
        let mut doc = match divoc_pdf::CertificateDocument::from_credentials(
            std::slice::from_ref(&record.credential),
            qr_text,
        ) {
            Ok(doc) => doc,
            // Not a vaccination credential (an operator-defined type): it has
            // no printable form, which is not a failure.
            Err(divoc_pdf::PdfError::Credential(_)) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        doc.certificate_id = record.id.clone();
        self.0
            .render(&doc, self.0.default_language())
            .map(Some)
            .map_err(|e| e.to_string())
    }
}
