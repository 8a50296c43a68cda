//! Host metadata: a small string key/value table for facts about the
//! installation itself (an instance id generated on first start, the
//! version that last opened the database, ...). Not for plugin data: that
//! goes in [`crate::kv`], which enforces quotas.

use crate::sql::Optional;

use crate::db::{Database, PendingWrite, Reader, Tx};
use crate::error::Result;

/// Reads a metadata value.
pub fn get(r: &Reader<'_>, key: &str) -> Result<Option<String>> {
    Ok(r.conn()
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()?)
}

/// Sets a metadata value, replacing any previous one.
pub fn set(tx: &Tx<'_>, key: &str, value: &str) -> Result<()> {
    tx.conn().execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

/// Returns the value under `key`, first storing `init()` if there is none.
/// Runs inside the single writer, so two callers can never both generate a
/// value (e.g. two different instance ids).
pub fn get_or_insert_with(tx: &Tx<'_>, key: &str, init: impl FnOnce() -> String) -> Result<String> {
    if let Some(existing) = get(&tx.reader(), key)? {
        return Ok(existing);
    }
    let value = init();
    set(tx, key, &value)?;
    Ok(value)
}

/// Deletes a metadata value; returns whether it existed.
pub fn delete(tx: &Tx<'_>, key: &str) -> Result<bool> {
    Ok(tx
        .conn()
        .execute("DELETE FROM meta WHERE key = ?1", [key])?
        > 0)
}

impl Database {
    /// Reads a metadata value (see [`get`]).
    pub fn meta_get(&self, key: &str) -> Result<Option<String>> {
        self.read(|r| get(r, key))
    }

    /// Sets a metadata value through the writer (see [`set`]).
    pub fn meta_set(&self, key: &str, value: &str) -> PendingWrite<()> {
        let (key, value) = (key.to_string(), value.to_string());
        self.write(move |tx| set(tx, &key, &value))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Database, DbOptions};

    #[test]
    fn set_get_replace_delete() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("m.db"), DbOptions::default()).unwrap();
        assert_eq!(db.meta_get("a").unwrap(), None);
        db.meta_set("a", "1").wait().unwrap();
        db.meta_set("a", "2").wait().unwrap();
        assert_eq!(db.meta_get("a").unwrap().as_deref(), Some("2"));
        let existed = db.write(|tx| super::delete(tx, "a")).wait().unwrap();
        assert!(existed);
        assert_eq!(db.meta_get("a").unwrap(), None);
    }

    #[test]
    fn get_or_insert_generates_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_test(&dir.path().join("m.db"), DbOptions::default()).unwrap();
        let first = db
            .write(|tx| super::get_or_insert_with(tx, "instance_id", || "id-1".into()))
            .wait()
            .unwrap();
        let second = db
            .write(|tx| super::get_or_insert_with(tx, "instance_id", || "id-2".into()))
            .wait()
            .unwrap();
        assert_eq!(first, "id-1");
        assert_eq!(second, "id-1");
    }
}
