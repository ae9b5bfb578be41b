//! Password hashing with argon2id, off the async runtime and with bounded concurrency, so a
//! burst of sign-ins cannot starve the server of threads or memory.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::CryptoError;
use crate::secret::{Secret, random_bytes};

/// argon2id cost parameters. The default is OWASP's: 19 MiB, two passes, one lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish()
    }
}

impl PasswordHasher {
    /// `max_concurrent` bounds the hashes running at once (and so their memory).
    pub fn new(cost: HashCost, max_concurrent: usize) -> Result<Self, CryptoError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| CryptoError::PasswordHash(e.to_string()))?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
        })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: &Secret) -> Result<String, CryptoError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| CryptoError::PasswordHash(e.to_string()))?;
        let argon = self.argon2();
        let password = password.clone();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::encode_b64(&random_bytes::<16>())
                .map_err(|e| CryptoError::PasswordHash(e.to_string()))?;
            argon
                .hash_password(password.expose().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| CryptoError::PasswordHash(e.to_string()))
        })
        .await
        .map_err(|e| CryptoError::PasswordHash(e.to_string()))?
    }

    /// Whether the password matches the PHC string (whose own parameters are used).
    pub async fn verify(&self, phc: &str, password: &Secret) -> Result<bool, CryptoError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| CryptoError::PasswordHash(e.to_string()))?;
        let this = self.clone();
        let phc = phc.to_owned();
        let password = password.clone();
        tokio::task::spawn_blocking(move || this.verify_blocking(&phc, &password))
            .await
            .map_err(|e| CryptoError::PasswordHash(e.to_string()))?
    }

    /// The same check on the calling thread, without the concurrency bound: for benchmarks
    /// and tools, never on the async runtime.
    pub fn verify_blocking(&self, phc: &str, password: &Secret) -> Result<bool, CryptoError> {
        let parsed =
            PasswordHash::new(phc).map_err(|e| CryptoError::PasswordHash(e.to_string()))?;
        Ok(self
            .argon2()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_reject() {
        let cheap = HashCost {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        let hasher = PasswordHasher::new(cheap, 2).unwrap();
        let phc = hasher.hash(&Secret::new("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(
            hasher
                .verify(&phc, &Secret::new("correct horse"))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(&phc, &Secret::new("wrong horse"))
                .await
                .unwrap()
        );
    }

    #[test]
    fn default_cost_is_owasp() {
        assert_eq!(
            HashCost::default(),
            HashCost {
                memory_kib: 19456,
                iterations: 2,
                parallelism: 1
            }
        );
    }
}
