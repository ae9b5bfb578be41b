//! Random values handed to people: temporary passwords that satisfy a pool's password policy,
//! and the numeric codes that verify an attribute or a password reset.

use gatehouse_crypto::secret::{Secret, random_bytes};
use gatehouse_domain::pool::PasswordPolicy;

/// Shortest temporary password issued, whatever the policy allows.
pub const TEMPORARY_PASSWORD_MIN_CHARS: usize = 12;

/// Digits in a verification or reset code.
pub const CODE_DIGITS: usize = 6;

const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &[u8] = b"23456789";
/// Symbols that read unambiguously and need no quoting in a message; each is in
/// [`gatehouse_domain::pool::PASSWORD_SYMBOLS`].
const SYMBOLS: &[u8] = b"!#%*+-=?@_";

/// Uniform random choices from the operating system's generator.
struct Draw {
    buf: [u8; 64],
    pos: usize,
}

impl Draw {
    fn new() -> Self {
        Self {
            buf: random_bytes::<64>(),
            pos: 0,
        }
    }

    fn byte(&mut self) -> u8 {
        if self.pos == self.buf.len() {
            self.buf = random_bytes::<64>();
            self.pos = 0;
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        b
    }

    /// A uniform index below `n` (1 ≤ n ≤ 256), by rejection sampling.
    fn below(&mut self, n: usize) -> usize {
        let n = n.clamp(1, 256);
        let zone = 256 - (256 % n);
        loop {
            let b = usize::from(self.byte());
            if b < zone {
                return b % n;
            }
        }
    }

    fn pick(&mut self, set: &[u8]) -> u8 {
        set[self.below(set.len())]
    }
}

/// A random temporary password that satisfies `policy`: at least
/// `max(policy minimum, 12)` characters with a lowercase letter, an uppercase letter, a digit
/// and a symbol, whatever the policy requires.
pub fn temporary_password(policy: &PasswordPolicy) -> Secret {
    let len = usize::from(policy.minimum_length).max(TEMPORARY_PASSWORD_MIN_CHARS);
    let mut draw = Draw::new();
    let classes: [&[u8]; 4] = [LOWER, UPPER, DIGITS, SYMBOLS];
    let all: Vec<u8> = classes.concat();
    let mut chars: Vec<u8> = classes.iter().map(|c| draw.pick(c)).collect();
    while chars.len() < len {
        chars.push(draw.pick(&all));
    }
    // Fisher–Yates, so the guaranteed characters are not always first.
    for i in (1..chars.len()).rev() {
        let j = draw.below(i + 1);
        chars.swap(i, j);
    }
    Secret::new(chars.into_iter().map(char::from).collect::<String>())
}

/// A random numeric code of [`CODE_DIGITS`] digits.
pub fn numeric_code() -> Secret {
    let mut draw = Draw::new();
    let code: String = (0..CODE_DIGITS)
        .map(|_| char::from(draw.pick(b"0123456789")))
        .collect();
    Secret::new(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_domain::pool::PASSWORD_SYMBOLS;

    fn policies() -> Vec<PasswordPolicy> {
        let mut out = Vec::new();
        for minimum_length in [6u8, 8, 12, 13, 40, 99] {
            for flags in 0..16u8 {
                out.push(PasswordPolicy {
                    minimum_length,
                    require_lowercase: flags & 1 != 0,
                    require_uppercase: flags & 2 != 0,
                    require_numbers: flags & 4 != 0,
                    require_symbols: flags & 8 != 0,
                    temporary_password_validity_days: 7,
                });
            }
        }
        out
    }

    #[test]
    fn temporary_passwords_meet_every_policy() {
        for policy in policies() {
            for _ in 0..20 {
                let p = temporary_password(&policy);
                assert!(policy.check(p.expose()).is_ok(), "{policy:?}");
                let n = p.expose().chars().count();
                assert_eq!(
                    n,
                    usize::from(policy.minimum_length).max(TEMPORARY_PASSWORD_MIN_CHARS)
                );
            }
        }
    }

    #[test]
    fn temporary_passwords_hold_every_class() {
        let strict = PasswordPolicy {
            require_lowercase: true,
            require_uppercase: true,
            require_numbers: true,
            require_symbols: true,
            ..PasswordPolicy::default()
        };
        for _ in 0..200 {
            let p = temporary_password(&PasswordPolicy::default());
            assert!(strict.check(p.expose()).is_ok());
        }
    }

    #[test]
    fn symbols_are_the_policys_symbols() {
        assert!(
            SYMBOLS
                .iter()
                .all(|b| PASSWORD_SYMBOLS.contains(char::from(*b)))
        );
    }

    #[test]
    fn temporary_passwords_differ() {
        let policy = PasswordPolicy::default();
        let a = temporary_password(&policy);
        let b = temporary_password(&policy);
        assert_ne!(a, b);
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let c = numeric_code();
            assert_eq!(c.expose().len(), CODE_DIGITS);
            assert!(c.expose().bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn draws_are_in_range_and_cover_it() {
        let mut d = Draw::new();
        let mut seen = [false; 10];
        for _ in 0..2000 {
            let i = d.below(10);
            assert!(i < 10);
            seen[i] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
