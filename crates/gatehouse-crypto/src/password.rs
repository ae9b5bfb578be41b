//! Password hashing with argon2id on a fixed set of worker threads, off the async runtime.
//!
//! Each worker keeps its argon2 working memory (19 MiB at the default cost) and reuses it for
//! every verification, so a burst of sign-ins costs neither fresh allocations and page faults
//! nor more memory than `workers × memory_kib`. Requests queue in front of the workers; the
//! queue is bounded, and callers wait for a place.

use std::cell::RefCell;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{Semaphore, oneshot};

use crate::CryptoError;
use crate::secret::{Secret, constant_time_eq, random_bytes};

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

/// Requests that may wait for a worker before callers are held back.
const QUEUE_DEPTH: usize = 4096;

enum Job {
    Hash(Secret, oneshot::Sender<Result<String, CryptoError>>),
    Verify(String, Secret, oneshot::Sender<Result<bool, CryptoError>>),
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    jobs: mpsc::Sender<Job>,
    queue: Arc<Semaphore>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish()
    }
}

fn err(e: impl std::fmt::Display) -> CryptoError {
    CryptoError::PasswordHash(e.to_string())
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_phc(params: &Params, password: &Secret) -> Result<String, CryptoError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(err)?;
    argon2(params.clone())
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(err)
}

/// Checks `password` against a PHC string (with the string's own parameters), using
/// `memory` as argon2's working memory and growing it when the parameters need more.
fn verify_phc(phc: &str, password: &Secret, memory: &mut Vec<Block>) -> Result<bool, CryptoError> {
    let parsed = PasswordHash::new(phc).map_err(err)?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Ok(false);
    };
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(err)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(err)?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(err)?;
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf).map_err(err)?;
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let memory = memory
        .get_mut(..blocks)
        .ok_or_else(|| err("argon2 memory"))?;
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.expose().as_bytes(), salt, &mut out, memory)
        .map_err(err)?;
    Ok(constant_time_eq(&out, expected.as_bytes()))
}

fn worker(params: Params, jobs: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(Job::Hash(password, reply)) => {
                let _ = reply.send(hash_phc(&params, &password));
            }
            Ok(Job::Verify(phc, password, reply)) => {
                let _ = reply.send(verify_phc(&phc, &password, &mut memory));
            }
            // Every sender is gone: the hasher was dropped.
            Err(_) => return,
        }
    }
}

impl PasswordHasher {
    /// Starts `workers` hashing threads; they bound both the hashes running at once and the
    /// memory they use.
    pub fn new(cost: HashCost, workers: usize) -> Result<Self, CryptoError> {
        let params =
            Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None).map_err(err)?;
        let (tx, rx) = mpsc::channel();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let (params, rx) = (params.clone(), rx.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(params, rx))
                .map_err(err)?;
        }
        Ok(Self {
            params,
            jobs: tx,
            queue: Arc::new(Semaphore::new(QUEUE_DEPTH)),
        })
    }

    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, CryptoError>>) -> Job,
    ) -> Result<T, CryptoError> {
        let _place = self.queue.acquire().await.map_err(err)?;
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(job(reply))
            .map_err(|_| err("the hashing workers stopped"))?;
        answer.await.map_err(err)?
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: &Secret) -> Result<String, CryptoError> {
        let password = password.clone();
        self.submit(|reply| Job::Hash(password, reply)).await
    }

    /// Whether the password matches the PHC string (whose own parameters are used).
    pub async fn verify(&self, phc: &str, password: &Secret) -> Result<bool, CryptoError> {
        let (phc, password) = (phc.to_owned(), password.clone());
        self.submit(|reply| Job::Verify(phc, password, reply)).await
    }

    /// The same check on the calling thread, with that thread's own reused memory: for
    /// benchmarks and tools, never on the async runtime.
    pub fn verify_blocking(&self, phc: &str, password: &Secret) -> Result<bool, CryptoError> {
        thread_local! {
            static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
        }
        MEMORY.with(|m| verify_phc(phc, password, &mut m.borrow_mut()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashCost {
        HashCost {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_reject() {
        let hasher = PasswordHasher::new(cheap(), 2).unwrap();
        let phc = hasher.hash(&Secret::new("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
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
        assert!(
            hasher
                .verify_blocking(&phc, &Secret::new("correct horse"))
                .unwrap()
        );
    }

    #[tokio::test]
    async fn hashes_made_with_other_parameters_still_verify() {
        // A hash from before a cost change, checked by a hasher with a larger cost (and
        // memory already grown past what the old hash needs).
        let old = PasswordHasher::new(cheap(), 1).unwrap();
        let phc = old.hash(&Secret::new("s3cret")).await.unwrap();
        let bigger = HashCost {
            memory_kib: 4096,
            ..cheap()
        };
        let new = PasswordHasher::new(bigger, 1).unwrap();
        let newer = new.hash(&Secret::new("s3cret")).await.unwrap();
        assert!(new.verify(&newer, &Secret::new("s3cret")).await.unwrap());
        assert!(new.verify(&phc, &Secret::new("s3cret")).await.unwrap());
        assert!(!new.verify(&phc, &Secret::new("s3cre7")).await.unwrap());
    }

    #[tokio::test]
    async fn malformed_hashes_are_errors_not_panics() {
        let hasher = PasswordHasher::new(cheap(), 1).unwrap();
        assert!(
            hasher
                .verify("not a phc string", &Secret::new("x"))
                .await
                .is_err()
        );
        assert!(
            !hasher
                .verify("$argon2id$v=19$m=1024,t=1,p=1", &Secret::new("x"))
                .await
                .unwrap_or(false)
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
