//! The wall clock, as an input: the verifier reads the time only through a [`Clock`], so a
//! service (or a test) can give it another.

/// Seconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn unix_seconds(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one place this crate reads the wall clock; everything else is given a `Clock`.
    #[allow(clippy::disallowed_methods)]
    fn unix_seconds(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}
