//! Each pool's share of this instance's hook time.
//!
//! Anyone may start a custom sign-in (`InitiateAuth CUSTOM_AUTH` runs Define and Create for
//! any username, as Cognito does), so without a bound a flood of abandoned sign-ins would
//! have the server run a pool's hooks, or call its webhook, as often as the flood asks, and
//! the other pools' hooks would wait behind them for the hook threads. Each pool therefore
//! has a bucket of hook time: a call may start while the bucket holds any, and what it took
//! (its wall-clock time for WebAssembly; a fixed cost per webhook call, whose time is spent
//! waiting on the pool's own endpoint) is taken out after it ends. Time puts it back at
//! [`HookBudget::per_second`]. An empty bucket refuses the sign-in that needs the hook with
//! 503 and `Retry-After`; nothing else of the pool is slowed.
//!
//! With the default of one second of hook time per second, a pool can hold at most one hook
//! thread on average however it is called, and a WebAssembly hook of 100 µs runs ten thousand
//! times a second. The buckets are in this process (per instance).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gatehouse_domain::ids::PoolId;

/// What a webhook call costs, whatever it waited: it bounds how often one instance calls a
/// pool's endpoint (a hundred times a second at the default rate).
pub const WEBHOOK_CALL_COST: Duration = Duration::from_millis(10);

/// Buckets kept at most; past this, full ones are forgotten first.
const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Hook time available, in microseconds; negative after a call that took more than
    /// was left (the next calls wait for it to be paid back).
    micros: i64,
    at: Instant,
}

/// Each pool's bucket of hook time.
#[derive(Debug)]
pub struct HookBudget {
    per_second: Duration,
    burst: Duration,
    buckets: Mutex<HashMap<PoolId, Bucket>>,
}

impl Default for HookBudget {
    /// One second of hook time per second, two seconds at once.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(2))
    }
}

impl HookBudget {
    /// A budget of `per_second` of hook time per second for each pool, `burst` at most at
    /// once (at least `per_second`).
    pub fn new(per_second: Duration, burst: Duration) -> Self {
        Self {
            per_second,
            burst: burst.max(per_second),
            buckets: Mutex::default(),
        }
    }

    pub fn per_second(&self) -> Duration {
        self.per_second
    }

    fn refilled(&self, b: Bucket, now: Instant) -> Bucket {
        let earned =
            now.saturating_duration_since(b.at).as_secs_f64() * self.per_second.as_micros() as f64;
        let cap = self.burst.as_micros() as i64;
        Bucket {
            micros: (b.micros as f64 + earned).min(cap as f64) as i64,
            at: now,
        }
    }

    /// Whether `pool` may start a hook call now: `Err` with the seconds until it may.
    pub fn admit(&self, pool: PoolId, now: Instant) -> Result<(), u32> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some(b) = buckets.get(&pool).copied() else {
            return Ok(());
        };
        let b = self.refilled(b, now);
        buckets.insert(pool, b);
        if b.micros > 0 {
            return Ok(());
        }
        let rate = self.per_second.as_micros().max(1) as f64;
        let wait = ((-b.micros) as f64 / rate).ceil();
        Err((wait as u32).max(1))
    }

    /// Takes what a call of `pool` cost out of its bucket.
    pub fn charge(&self, pool: PoolId, cost: Duration, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&pool) {
            let cap = self.burst.as_micros() as i64;
            buckets.retain(|_, b| self.refilled(*b, now).micros < cap);
        }
        let full = Bucket {
            micros: self.burst.as_micros() as i64,
            at: now,
        };
        let b = buckets.get(&pool).map_or(full, |b| self.refilled(*b, now));
        buckets.insert(
            pool,
            Bucket {
                micros: b.micros - cost.as_micros() as i64,
                at: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_spends_its_burst_then_waits_for_its_rate_and_others_are_untouched() {
        let budget = HookBudget::new(Duration::from_millis(100), Duration::from_millis(200));
        let (a, b) = (PoolId::new_random(), PoolId::new_random());
        let t0 = Instant::now();
        assert_eq!(budget.admit(a, t0), Ok(()));
        budget.charge(a, Duration::from_millis(150), t0);
        assert_eq!(budget.admit(a, t0), Ok(()), "50 ms are left");
        // A call may overdraw what is left; the next ones wait for it to be paid back.
        budget.charge(a, Duration::from_millis(250), t0);
        assert_eq!(
            budget.admit(a, t0),
            Err(2),
            "200 ms owed at 100 ms a second"
        );
        assert_eq!(budget.admit(b, t0), Ok(()), "another pool is not touched");
        assert!(budget.admit(a, t0 + Duration::from_millis(1900)).is_err());
        assert_eq!(budget.admit(a, t0 + Duration::from_millis(2100)), Ok(()));
        // Never more than the burst saved up.
        let later = t0 + Duration::from_secs(60);
        budget.charge(a, Duration::from_millis(200), later);
        assert!(budget.admit(a, later).is_err());
    }
}
