//! Watches the plugins directory and reloads when it changes.
//!
//! File events arrive in bursts (a copy is several writes, an editor writes a
//! temp file and renames it), so events are debounced: the reload runs once
//! the directory has been quiet for [`DEBOUNCE`]. A reload that sees a
//! half-written component rejects it and keeps the old version; the write's
//! last event triggers another reload that picks up the finished file.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};

use crate::registry::Runtime;

/// Quiet time before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// A running directory watch; dropping it stops watching.
pub struct Watcher {
    _watcher: notify::RecommendedWatcher,
    _thread: std::thread::JoinHandle<()>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Watcher {
    /// Starts watching `dir`; each settled change calls `runtime.reload_dir`.
    pub fn start(runtime: Runtime, dir: &Path) -> notify::Result<Watcher> {
        let (tx, rx) = mpsc::channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    if !event.kind.is_access() {
                        let _ = tx.send(());
                    }
                }
            })?;
        watcher.watch(dir, RecursiveMode::Recursive)?;
        let dir: PathBuf = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("divoc-plugin-watch".into())
            .spawn(move || {
                // Ends when the notify watcher (and so the sender) is dropped.
                while rx.recv().is_ok() {
                    while rx.recv_timeout(DEBOUNCE).is_ok() {}
                    let report = runtime.reload_dir(&dir);
                    if !report.loaded.is_empty()
                        || !report.rejected.is_empty()
                        || !report.removed.is_empty()
                    {
                        tracing::info!(
                            loaded = ?report.loaded,
                            removed = ?report.removed,
                            rejected = report.rejected.len(),
                            "plugins directory changed"
                        );
                    }
                }
            })
            .map_err(|e| notify::Error::generic(&e.to_string()))?;
        Ok(Watcher {
            _watcher: watcher,
            _thread: thread,
        })
    }
}
