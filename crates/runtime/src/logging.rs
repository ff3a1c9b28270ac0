//! The log filter of the process, changeable while it runs: the binary
//! installs a setter at start-up (it owns the subscriber), and the health
//! server's `/log-level` endpoint calls it.

use std::sync::{Arc, Mutex, OnceLock};

/// Applies a new filter (tracing's `EnvFilter` syntax), or says why it cannot.
pub type Setter = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

struct Level {
    current: Mutex<String>,
    setter: Setter,
}

static LEVEL: OnceLock<Level> = OnceLock::new();

/// Installs the process's setter and records its initial filter. Only the
/// first call counts: a process has one subscriber.
pub fn install(initial: &str, setter: Setter) {
    let _ = LEVEL.set(Level {
        current: Mutex::new(initial.to_string()),
        setter,
    });
}

/// The filter in force, if the process installed a setter.
pub fn current() -> Option<String> {
    LEVEL
        .get()
        .map(|l| l.current.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

/// Why the filter was not changed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("this process cannot change its log level")]
    NotInstalled,
    #[error("{0}")]
    Invalid(String),
}

/// Replaces the filter, e.g. `debug` or `info,mutu_site=debug`.
pub fn set(filter: &str) -> Result<(), SetError> {
    let level = LEVEL.get().ok_or(SetError::NotInstalled)?;
    let filter = filter.trim();
    if filter.is_empty() {
        return Err(SetError::Invalid(
            "an empty filter; give e.g. `info` or `info,mutu_site=debug`".into(),
        ));
    }
    (level.setter)(filter).map_err(SetError::Invalid)?;
    *level.current.lock().unwrap_or_else(|e| e.into_inner()) = filter.to_string();
    tracing::warn!(filter, "log level changed");
    Ok(())
}
