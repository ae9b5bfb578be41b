//! What one hook call may use.

use std::time::Duration;

use crate::HookError;

/// The limits of every call of an engine's hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (roughly, WebAssembly instructions) for one call, instantiation included.
    pub fuel: u64,
    /// Wall-clock time for one call, instantiation included (epoch interruption).
    pub deadline: Duration,
    /// The linear memory one call may hold, in bytes: all its memories together.
    pub memory_bytes: usize,
    /// The longest answer, in bytes.
    pub max_output_bytes: usize,
    /// Calls running at once, on blocking threads of their own; more wait their turn.
    pub max_concurrent: usize,
}

/// A JavaScript (StarlingMonkey) Define hook spends about 2.5 million fuel on a call,
/// instantiation included (measured on the tests' hook): this is about 20 times that, and a
/// core-module hook needs thousands. An infinite loop burns it in tens of milliseconds.
pub const DEFAULT_FUEL: u64 = 50_000_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: DEFAULT_FUEL,
            deadline: Duration::from_millis(100),
            memory_bytes: 64 << 20,
            max_output_bytes: 64 << 10,
            max_concurrent: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2)
                .max(2),
        }
    }
}

impl Limits {
    pub(crate) fn check(&self) -> Result<(), HookError> {
        let bad = |what: &str| Err(HookError::Invalid(format!("limits: {what}")));
        if self.fuel == 0 {
            return bad("fuel must be positive");
        }
        if self.deadline < Duration::from_millis(1) {
            return bad("the deadline must be at least 1 ms");
        }
        if self.memory_bytes < 64 << 10 {
            return bad("memory must be at least one WebAssembly page (64 KiB)");
        }
        if self.max_output_bytes == 0 {
            return bad("max_output_bytes must be positive");
        }
        if self.max_concurrent == 0 {
            return bad("max_concurrent must be positive");
        }
        Ok(())
    }

    /// The epoch ticker's period: a tenth of the deadline, between 1 and 10 ms.
    pub(crate) fn tick(&self) -> Duration {
        (self.deadline / 10).clamp(Duration::from_millis(1), Duration::from_millis(10))
    }

    /// The deadline in ticks, rounded up. The first tick comes up to one period after a call
    /// starts, so a call is interrupted after between `ticks - 1` and `ticks` periods.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = self.tick().as_nanos().max(1);
        let ticks = self.deadline.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_deadline_is_ten_ticks_of_ten_ms() {
        let l = Limits::default();
        assert_eq!(l.tick(), Duration::from_millis(10));
        assert_eq!(l.deadline_ticks(), 10);
        assert!(l.max_concurrent >= 2);
        assert!(l.check().is_ok());
    }

    #[test]
    fn short_deadlines_tick_faster() {
        let l = Limits {
            deadline: Duration::from_millis(5),
            ..Limits::default()
        };
        assert_eq!(l.tick(), Duration::from_millis(1));
        assert_eq!(l.deadline_ticks(), 5);
    }

    #[test]
    fn unusable_limits_are_refused() {
        for l in [
            Limits {
                fuel: 0,
                ..Limits::default()
            },
            Limits {
                deadline: Duration::ZERO,
                ..Limits::default()
            },
            Limits {
                memory_bytes: 1,
                ..Limits::default()
            },
            Limits {
                max_concurrent: 0,
                ..Limits::default()
            },
        ] {
            assert!(matches!(l.check(), Err(HookError::Invalid(_))), "{l:?}");
        }
    }
}
