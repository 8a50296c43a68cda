//! Plugin-private key/value storage with a per-plugin byte quota.
//!
//! Each plugin sees only its own namespace (`plugin` is filled in by the
//! host, never by the plugin). A plugin's usage is the sum over its entries
//! of `len(key as UTF-8) + len(value)`; the quota bounds that sum so one
//! plugin cannot fill the disk.

use crate::db::{Database, PendingWrite, Reader, Tx};
use crate::error::{to_u64, Result, StorageError};
use crate::sql::{params, Optional};

/// Reads one value.
pub fn get(r: &Reader<'_>, plugin: &str, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(r.conn()
        .query_row(
            "SELECT value FROM plugin_kv WHERE plugin = ?1 AND key = ?2",
            [plugin, key],
            |row| row.get(0),
        )
        .optional()?)
}

/// Stores `value` under `key`, replacing any previous value, unless the
/// plugin's usage after the write would exceed `quota_bytes`; then it
/// returns [`StorageError::QuotaExceeded`] and stores nothing.
///
/// The replaced value's bytes do not count, so overwriting a value with one
/// of the same size always succeeds while under quota. A plugin already over
/// a (since lowered) quota can only delete until it is back under.
pub fn set(tx: &Tx<'_>, plugin: &str, key: &str, value: &[u8], quota_bytes: u64) -> Result<()> {
    let others: i64 = tx.conn().query_row(
        "SELECT CAST(COALESCE(SUM(octet_length(key) + octet_length(value)), 0) AS BIGINT)
           FROM plugin_kv WHERE plugin = ?1 AND key <> ?2",
        [plugin, key],
        |row| row.get(0),
    )?;
    let would_use = to_u64(others, "kv usage")?
        .saturating_add(key.len() as u64)
        .saturating_add(value.len() as u64);
    // Checked before writing rather than rolled back after, so a refused
    // write costs no I/O and leaves nothing behind even outside a savepoint.
    if would_use > quota_bytes {
        return Err(StorageError::QuotaExceeded {
            plugin: plugin.to_string(),
            quota: quota_bytes,
            would_use,
        });
    }
    tx.conn().execute(
        "INSERT INTO plugin_kv(plugin, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT(plugin, key) DO UPDATE SET value = excluded.value",
        params![plugin, key, value],
    )?;
    Ok(())
}

/// Deletes one entry; returns whether it existed.
pub fn delete(tx: &Tx<'_>, plugin: &str, key: &str) -> Result<bool> {
    Ok(tx.conn().execute(
        "DELETE FROM plugin_kv WHERE plugin = ?1 AND key = ?2",
        [plugin, key],
    )? > 0)
}

/// Lists up to `limit` keys of `plugin` that start with `prefix`, in byte
/// order.
///
/// The prefix is matched byte for byte: `%`, `_` and `\` have no special
/// meaning. Rather than `LIKE`, this seeks to the first key `>= prefix` in
/// the primary-key index and reads forward while keys still start with the
/// prefix; with binary collation all such keys are contiguous.
pub fn list(r: &Reader<'_>, plugin: &str, prefix: &str, limit: usize) -> Result<Vec<String>> {
    let mut stmt = r
        .conn()
        .prepare_cached("SELECT key FROM plugin_kv WHERE plugin = ?1 AND key >= ?2 ORDER BY key")?;
    let mut rows = stmt.query([plugin, prefix])?;
    let mut keys = Vec::new();
    while keys.len() < limit {
        let Some(row) = rows.next()? else { break };
        let key: String = row.get(0)?;
        if !key.starts_with(prefix) {
            break;
        }
        keys.push(key);
    }
    Ok(keys)
}

/// Bytes the plugin currently uses (see the module docs for the measure).
pub fn usage(r: &Reader<'_>, plugin: &str) -> Result<u64> {
    let used: i64 = r.conn().query_row(
        "SELECT CAST(COALESCE(SUM(octet_length(key) + octet_length(value)), 0) AS BIGINT)
           FROM plugin_kv WHERE plugin = ?1",
        [plugin],
        |row| row.get(0),
    )?;
    to_u64(used, "kv usage")
}

impl Database {
    /// Reads one plugin value (see [`get`]).
    pub fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(|r| get(r, plugin, key))
    }

    /// Stores one plugin value through the writer, enforcing the quota
    /// (see [`set`]).
    pub fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        quota_bytes: u64,
    ) -> PendingWrite<()> {
        let (plugin, key, value) = (plugin.to_string(), key.to_string(), value.to_vec());
        self.write(move |tx| set(tx, &plugin, &key, &value, quota_bytes))
    }

    /// Deletes one plugin value through the writer (see [`delete`]).
    pub fn kv_delete(&self, plugin: &str, key: &str) -> PendingWrite<bool> {
        let (plugin, key) = (plugin.to_string(), key.to_string());
        self.write(move |tx| delete(tx, &plugin, &key))
    }

    /// Lists a plugin's keys by exact prefix (see [`list`]).
    pub fn kv_list(&self, plugin: &str, prefix: &str, limit: usize) -> Result<Vec<String>> {
        self.read(|r| list(r, plugin, prefix, limit))
    }

    /// A plugin's current usage in bytes (see [`usage`]).
    pub fn kv_usage(&self, plugin: &str) -> Result<u64> {
        self.read(|r| usage(r, plugin))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Database, DbOptions, StorageError};

    fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("kv.db"), DbOptions::default()).unwrap();
        (dir, db)
    }

    #[test]
    fn set_get_delete_and_plugins_are_isolated() {
        let (_d, db) = db();
        db.kv_set("a", "k", b"one", 100).wait().unwrap();
        db.kv_set("b", "k", b"two", 100).wait().unwrap();
        assert_eq!(db.kv_get("a", "k").unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(db.kv_get("b", "k").unwrap().as_deref(), Some(&b"two"[..]));
        assert!(db.kv_delete("a", "k").wait().unwrap());
        assert!(!db.kv_delete("a", "k").wait().unwrap());
        assert_eq!(db.kv_get("a", "k").unwrap(), None);
        assert_eq!(db.kv_get("b", "k").unwrap().as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn usage_counts_key_and_value_bytes() {
        let (_d, db) = db();
        // "é" is two bytes in UTF-8: usage is in bytes, not characters.
        db.kv_set("p", "é", &[0u8; 10], 100).wait().unwrap();
        db.kv_set("p", "ab", &[0u8; 3], 100).wait().unwrap();
        assert_eq!(db.kv_usage("p").unwrap(), 2 + 10 + 2 + 3);
        // Overwrite: the old value no longer counts.
        db.kv_set("p", "ab", &[0u8; 1], 100).wait().unwrap();
        assert_eq!(db.kv_usage("p").unwrap(), 2 + 10 + 2 + 1);
        assert_eq!(db.kv_usage("other").unwrap(), 0);
    }

    #[test]
    fn quota_exceeded_stores_nothing() {
        let (_d, db) = db();
        db.kv_set("p", "a", &[1u8; 9], 20).wait().unwrap(); // uses 10
        db.kv_set("p", "b", &[1u8; 9], 20).wait().unwrap(); // uses 20: exactly at quota
        match db.kv_set("p", "c", b"x", 20).wait() {
            Err(StorageError::QuotaExceeded {
                plugin,
                quota,
                would_use,
            }) => {
                assert_eq!(plugin, "p");
                assert_eq!(quota, 20);
                assert_eq!(would_use, 22);
            }
            other => panic!("expected QuotaExceeded, got {other:?}"),
        }
        assert_eq!(db.kv_get("p", "c").unwrap(), None);
        // Growing an existing value past the quota leaves the old value.
        assert!(matches!(
            db.kv_set("p", "a", &[2u8; 10], 20).wait(),
            Err(StorageError::QuotaExceeded { would_use: 21, .. })
        ));
        assert_eq!(db.kv_get("p", "a").unwrap().unwrap(), vec![1u8; 9]);
        assert_eq!(db.kv_usage("p").unwrap(), 20);
        // Another plugin's quota is independent.
        db.kv_set("q", "c", b"x", 20).wait().unwrap();
    }

    #[test]
    fn list_matches_prefix_bytes_exactly() {
        let (_d, db) = db();
        for key in [
            "a%b", "a%c", "axb", "a_b", "a_c", "a", "ab", "b", "a\\x", "a%", "é1",
        ] {
            db.kv_set("p", key, b"", 1_000).wait().unwrap();
        }
        db.kv_set("other", "a%z", b"", 1_000).wait().unwrap();
        // With LIKE, '%' and '_' would be wildcards and match "axb".
        assert_eq!(db.kv_list("p", "a%", 10).unwrap(), vec!["a%", "a%b", "a%c"]);
        assert_eq!(db.kv_list("p", "a_", 10).unwrap(), vec!["a_b", "a_c"]);
        assert_eq!(db.kv_list("p", "a\\", 10).unwrap(), vec!["a\\x"]);
        assert_eq!(db.kv_list("p", "é", 10).unwrap(), vec!["é1"]);
        assert_eq!(db.kv_list("p", "a", 3).unwrap(), vec!["a", "a%", "a%b"]);
        assert_eq!(db.kv_list("p", "", 100).unwrap().len(), 11);
        assert!(db.kv_list("p", "zz", 10).unwrap().is_empty());
        assert!(db.kv_list("p", "a", 0).unwrap().is_empty());
    }

    #[test]
    fn kv_write_and_other_work_share_a_transaction() {
        let (_d, db) = db();
        // A quota failure inside a larger write closure fails that closure
        // as a whole: the earlier kv write in it is rolled back too.
        let result = db
            .write(|tx| {
                super::set(tx, "p", "first", b"1", 100)?;
                super::set(tx, "p", "second", &[0u8; 200], 100)
            })
            .wait();
        assert!(matches!(result, Err(StorageError::QuotaExceeded { .. })));
        assert_eq!(db.kv_get("p", "first").unwrap(), None);
    }
}
