//! Random values handed to people: temporary passwords that satisfy a pool's password policy,
//! and the numeric codes that verify an attribute or a password reset — with the limits on
//! sending and guessing those codes.
//!
//! A code ends at its [`VerificationCode::MAX_ATTEMPTS`]th wrong guess, not at the first
//! (whoever makes it: a wrong guess costs the user nothing beyond that count). Sending a code
//! again to the same destination while it is good sends the same code, with its count and
//! expiry. Each send counts against [`CODES_PER_HOUR`] for the user's attribute and for the
//! destination; past either, the request that would send it is answered 429.

use gatehouse_crypto::secret::{Secret, constant_time_eq, random_bytes, sha256};
use gatehouse_domain::ids::UserId;
use gatehouse_domain::pool::{PasswordPolicy, Pool};
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::txn::PoolWrite;
use gatehouse_domain::user::{User, VerifiableAttribute, VerificationCode};

use crate::Gatehouse;
use crate::error::{ServiceError, ServiceResult};

/// Codes sent in an hour, per user and attribute and per destination.
pub const CODES_PER_HOUR: u32 = 5;
use gatehouse_domain::retention::CODE_WINDOW_SECS;

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

impl Gatehouse {
    /// The code to send for `user`'s `attribute` (to its e-mail address or phone number),
    /// stored through `w`: the one already sent there while it is good, else a new one valid
    /// for `ttl_secs`.
    pub(crate) async fn code_to_send(
        &self,
        w: &mut dyn PoolWrite,
        pool: &Pool,
        user: &User,
        attribute: VerifiableAttribute,
        now: Timestamp,
        ttl_secs: i64,
    ) -> ServiceResult<Secret> {
        let destination = match attribute {
            VerifiableAttribute::Email => user.attributes.email.as_str(),
            VerifiableAttribute::Phone => user.attributes.phone.as_deref().unwrap_or_default(),
        };
        let user = user.id;
        let keys = [
            format!("user:{user}:{}", attribute.as_str()),
            format!("to:{}", destination.trim().to_lowercase()),
        ];
        for key in &keys {
            if let Err(reopens) = w
                .count_code_sent(key, now, CODE_WINDOW_SECS, CODES_PER_HOUR)
                .await?
            {
                return Err(ServiceError::throttled_until(
                    "too many codes were sent lately; try again later",
                    reopens,
                    now,
                ));
            }
        }
        let label = format!("code:{user}:{}", attribute.as_str());
        if let Some(previous) = w.take_verification_code(user, attribute).await?
            && previous.destination == destination
            && previous.expires_at > now
            && previous.attempts < VerificationCode::MAX_ATTEMPTS
            && let Some(code) = previous
                .sealed_code
                .as_deref()
                .and_then(|sealed| self.keyring.open_code(pool.id, &label, sealed))
        {
            w.put_verification_code(&previous).await?;
            return Ok(code);
        }
        let code = numeric_code();
        w.put_verification_code(&VerificationCode {
            pool: pool.id,
            user_id: user,
            attribute,
            code_sha256: sha256(code.expose().as_bytes()),
            expires_at: now.plus_secs(ttl_secs),
            attempts: 0,
            destination: destination.to_owned(),
            sealed_code: Some(self.keyring.seal_code(pool.id, &label, &code)?),
        })
        .await?;
        Ok(code)
    }

    /// Whether `presented` is `user`'s good code for `attribute`, checked through `w`: if so
    /// it is used up; if not, the wrong guess is counted (the code ends at its last attempt)
    /// and `w` must be committed for that to hold.
    pub(crate) async fn check_code(
        &self,
        w: &mut dyn PoolWrite,
        user: UserId,
        attribute: VerifiableAttribute,
        presented: &Secret,
        now: Timestamp,
    ) -> ServiceResult<bool> {
        let Some(mut stored) = w.take_verification_code(user, attribute).await? else {
            return Ok(false);
        };
        if stored.expires_at <= now {
            return Ok(false);
        }
        let presented = sha256(presented.expose().trim().as_bytes());
        if constant_time_eq(&stored.code_sha256, &presented) {
            return Ok(true);
        }
        stored.attempts += 1;
        if stored.attempts < VerificationCode::MAX_ATTEMPTS {
            w.put_verification_code(&stored).await?;
        }
        Ok(false)
    }
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
