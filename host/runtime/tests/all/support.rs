//! Shared test support: where the built components are, real storage and
//! signing backends, runtime builders and small input constructors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use divoc_runtime::types::identity::Claim;
use divoc_runtime::{
    Grant, HostKey, HostServices, KvBackend, KvError, Runtime, RuntimeSettings, SignerBackend,
};

/// The hot-swap tests saturate both cores for seconds; tests with deadlines
/// (a 200 ms plugin deadline includes its SQLite writes) must not run beside
/// them. Heavy tests hold this exclusively, all others shared.
static LOAD: parking_lot::RwLock<()> = parking_lot::RwLock::new(());

pub fn shared() -> parking_lot::RwLockReadGuard<'static, ()> {
    LOAD.read()
}

pub fn exclusive() -> parking_lot::RwLockWriteGuard<'static, ()> {
    LOAD.write()
}

/// The workspace root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `target/fixtures/<crate>`, as written by the toolchain's build example.
pub fn fixture_dir(krate: &str) -> PathBuf {
    built_dir("fixtures", krate)
}

/// `target/plugins/<crate>`.
pub fn plugin_dir(krate: &str) -> PathBuf {
    built_dir("plugins", krate)
}

/// `target/c-plugins/<name>`: a C plugin from `plugins/c/<name>`, built by
/// its `build.sh` (scripts/setup.sh runs it).
pub fn c_plugin_dir(name: &str) -> PathBuf {
    built_dir("c-plugins", name)
}

fn built_dir(kind: &str, krate: &str) -> PathBuf {
    let dir = repo_root().join("target").join(kind).join(krate);
    let build = match kind {
        "fixtures" => {
            "cargo run -p divoc-toolchain --example build -- --fixtures conformance/fixtures target/fixtures".to_string()
        }
        "c-plugins" => format!("bash plugins/c/{krate}/build.sh (after scripts/install-c-guest.sh)"),
        _ => "cargo run -p divoc-toolchain --example build -- plugins target/plugins".to_string(),
    };
    assert!(
        dir.join("plugin.toml").is_file(),
        "{} is missing; build it with `{build}`",
        dir.display(),
    );
    dir
}

/// The manifest and component bytes of a built plugin directory.
pub fn read_plugin(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let manifest = std::fs::read(dir.join("plugin.toml")).unwrap();
    let wasm = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wasm"))
        .unwrap_or_else(|| panic!("no .wasm in {}", dir.display()));
    (manifest, std::fs::read(wasm).unwrap())
}

/// The plugin name a built directory's manifest declares.
pub fn plugin_name(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    divoc_runtime::Manifest::parse(&text).unwrap().plugin.name
}

/// Copies a built plugin directory to `dest` (created), optionally rewriting
/// its manifest text.
pub fn copy_plugin(src: &Path, dest: &Path, edit_manifest: impl FnOnce(String) -> String) {
    std::fs::create_dir_all(dest).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if name == "plugin.toml" {
            continue;
        }
        std::fs::copy(&path, dest.join(name)).unwrap();
    }
    let manifest = std::fs::read_to_string(src.join("plugin.toml")).unwrap();
    std::fs::write(dest.join("plugin.toml"), edit_manifest(manifest)).unwrap();
}

/// Settings with small limits and a small pool so tests start quickly.
pub fn settings() -> RuntimeSettings {
    let mut s = RuntimeSettings::default();
    s.engine.pool_instances = 64;
    s
}

/// A runtime with in-memory kv and no keys.
pub fn runtime(settings: RuntimeSettings) -> Runtime {
    Runtime::new(settings, HostServices::isolated()).unwrap()
}

/// Grants every capability the example plugins ask for, without http.
pub fn generous_grant() -> Grant {
    Grant {
        kv_quota_bytes: Some(16 << 20),
        signer_purposes: vec!["certificate".into()],
        ..Grant::default()
    }
}

/// An identity claim with just a type and a value.
pub fn claim(id_type: &str, value: &str) -> Claim {
    Claim {
        id_type: id_type.into(),
        value: value.into(),
        name: None,
        dob: None,
        challenge_id: None,
        challenge_response: None,
    }
}

/// Plugin kv in a real SQLite database through `divoc-storage`, as the host
/// binary wires it.
pub struct SqliteKv {
    pub db: divoc_storage::Database,
}

impl SqliteKv {
    pub fn open(dir: &Path) -> SqliteKv {
        let db = divoc_storage::Database::open_test(
            &dir.join("divoc.db"),
            divoc_storage::DbOptions::default(),
        )
        .unwrap();
        SqliteKv { db }
    }
}

fn backend(e: divoc_storage::StorageError) -> KvError {
    match e {
        divoc_storage::StorageError::QuotaExceeded {
            quota, would_use, ..
        } => KvError::QuotaExceeded { quota, would_use },
        other => KvError::Backend(other.to_string()),
    }
}

impl KvBackend for SqliteKv {
    fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.db.kv_get(plugin, key).map_err(backend)
    }

    fn set(&self, plugin: &str, key: &str, value: &[u8], quota_bytes: u64) -> Result<(), KvError> {
        self.db
            .kv_set(plugin, key, value, quota_bytes)
            .wait()
            .map_err(backend)
    }

    fn delete(&self, plugin: &str, key: &str) -> Result<(), KvError> {
        self.db
            .kv_delete(plugin, key)
            .wait()
            .map(|_| ())
            .map_err(backend)
    }

    fn list(&self, plugin: &str, prefix: &str, limit: u32) -> Result<Vec<String>, KvError> {
        self.db
            .kv_list(plugin, prefix, limit as usize)
            .map_err(backend)
    }
}

/// Host signing over the real issuer keyrings of `divoc-crypto`: Ed25519
/// and ES256 (with its document-signer certificate), as `divoc serve` has.
pub struct KeyringSigner {
    pub keyring: divoc_crypto::keys::Keyring,
    pub es256: divoc_crypto::keys::es256::Es256Keyring,
}

impl KeyringSigner {
    pub fn open(dir: &Path) -> KeyringSigner {
        let issuer = divoc_crypto::keys::IssuerConfig::new("did:web:example.org");
        let keyring =
            divoc_crypto::keys::Keyring::open_or_create(&dir.join("keys"), &issuer).unwrap();
        let es256 = divoc_crypto::keys::es256::Es256Keyring::open_or_create(
            &dir.join("keys"),
            &Default::default(),
        )
        .unwrap();
        KeyringSigner { keyring, es256 }
    }
}

impl SignerBackend for KeyringSigner {
    fn keys(&self) -> Vec<HostKey> {
        let ed = self.keyring.public_keys().into_iter().map(|k| HostKey {
            key_id: k.key_id,
            purpose: k.purpose,
            algorithm: divoc_runtime::KeyAlgorithm::Ed25519,
            public_key: k.public_key.to_vec(),
            active: k.active,
            certificate: None,
        });
        let ec = self.es256.keys().into_iter().map(|k| HostKey {
            key_id: k.kid,
            purpose: k.purpose,
            algorithm: divoc_runtime::KeyAlgorithm::Es256,
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
        self.keyring
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
        self.keyring
            .verify(key_id, data, signature)
            .map_err(|e| e.to_string())
    }
}

/// Real backends: SQLite kv and an on-disk keyring, under `dir`.
pub fn real_services(dir: &Path) -> (HostServices, Arc<SqliteKv>, Arc<KeyringSigner>) {
    let kv = Arc::new(SqliteKv::open(dir));
    let signer = Arc::new(KeyringSigner::open(dir));
    let services = HostServices {
        kv: kv.clone(),
        signer: signer.clone(),
        mail: Arc::new(divoc_runtime::NoMail),
    };
    (services, kv, signer)
}

/// Rewrites `old` to `new` in manifest text, failing loudly if absent.
pub fn replace(text: String, old: &str, new: &str) -> String {
    assert!(text.contains(old), "manifest has no `{old}`:\n{text}");
    text.replace(old, new)
}
