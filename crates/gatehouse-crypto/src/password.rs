//! Password hashing with argon2id on a fixed set of worker threads, off the async runtime.
//!
//! Each worker keeps its argon2 working memory (19 MiB at the default cost) and reuses it for
//! every verification, so a burst of sign-ins costs neither fresh allocations and page faults
//! nor more memory than `workers × memory_kib`.
//!
//! Requests queue in front of the workers, and the queue is bounded: when it is full a request
//! is refused at once ([`CryptoError::Busy`], answered 503 with `Retry-After`) instead of
//! waiting behind work that cannot finish in time. A check nobody waits for any more is
//! skipped when a worker reaches it: its caller's future was dropped, or the request it runs
//! for was abandoned ([`Awaited`]: the client disconnected, or the request's deadline passed).
//! A dropped caller gives its place in the queue back at once.

use std::cell::RefCell;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Requests that may wait for a worker, per worker, unless told otherwise: at the default cost
/// a worker does 40-50 hashes a second, so a full queue is about 0.4 s of work.
pub const DEFAULT_WAITING_PER_WORKER: usize = 16;

/// What the hashing workers did, since they started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashCounts {
    /// Hashes computed (hashing and verifying).
    pub computed: u64,
    /// Checks not computed because nobody waited for them any more: skipped by a worker, or
    /// asked for by a request already abandoned.
    pub abandoned: u64,
    /// Requests refused because the queue was full.
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Counters {
    computed: AtomicU64,
    abandoned: AtomicU64,
    refused: AtomicU64,
}

/// Whether the request a password check runs for still has someone waiting for its answer.
///
/// Requests may run to completion on a task of their own, so that a client hanging up cannot
/// cancel one inside a database transaction; then dropping the caller's future says nothing.
/// Whoever runs such a request marks it [`Awaited::abandon`]ed when its client goes or its
/// deadline passes, and the checks it queued ([`Awaited::scope`]) are skipped from then on.
#[derive(Debug, Clone)]
pub struct Awaited(Arc<tokio::sync::watch::Sender<bool>>);

tokio::task_local! {
    static AWAITED: Awaited;
}

impl Default for Awaited {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::watch::Sender::new(false)))
    }
}

impl Awaited {
    pub fn new() -> Self {
        Self::default()
    }

    /// Nobody waits for the request any more.
    pub fn abandon(&self) {
        self.0.send_replace(true);
    }

    fn abandoned(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the request is abandoned.
    async fn until_abandoned(&self) {
        let mut changes = self.0.subscribe();
        // The sender lives in `self`: waiting cannot fail while we hold it.
        let _ = changes.wait_for(|gone| *gone).await;
    }

    /// Runs `f` as this request: password checks it queues are skipped once it is abandoned.
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        AWAITED.scope(self, f).await
    }
}

struct Job {
    work: Work,
    /// The request it runs for, when it runs in one.
    awaited: Option<Awaited>,
}

enum Work {
    Hash(Secret, oneshot::Sender<Result<String, CryptoError>>),
    Verify(String, Secret, oneshot::Sender<Result<bool, CryptoError>>),
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    jobs: mpsc::Sender<Job>,
    /// Places for requests waiting or being hashed: workers + waiting.
    queue: Arc<Semaphore>,
    counters: Arc<Counters>,
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

impl Job {
    /// Whether whoever asked still waits for the answer.
    fn wanted(&self) -> bool {
        let caller_waits = match &self.work {
            Work::Hash(_, reply) => !reply.is_closed(),
            Work::Verify(_, _, reply) => !reply.is_closed(),
        };
        caller_waits && !self.awaited.as_ref().is_some_and(Awaited::abandoned)
    }
}

fn worker(params: Params, jobs: Arc<Mutex<mpsc::Receiver<Job>>>, counters: Arc<Counters>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        // Every sender is gone: the hasher was dropped.
        let Ok(job) = job else { return };
        if !job.wanted() {
            counters.abandoned.fetch_add(1, Ordering::Relaxed);
            // Whoever still polls the answer (a request that runs on) learns why.
            match job.work {
                Work::Hash(_, reply) => {
                    let _ = reply.send(Err(CryptoError::Abandoned));
                }
                Work::Verify(_, _, reply) => {
                    let _ = reply.send(Err(CryptoError::Abandoned));
                }
            }
            continue;
        }
        counters.computed.fetch_add(1, Ordering::Relaxed);
        match job.work {
            Work::Hash(password, reply) => {
                let _ = reply.send(hash_phc(&params, &password));
            }
            Work::Verify(phc, password, reply) => {
                let _ = reply.send(verify_phc(&phc, &password, &mut memory));
            }
        }
    }
}

impl PasswordHasher {
    /// Starts `workers` hashing threads; they bound both the hashes running at once and the
    /// memory they use. [`DEFAULT_WAITING_PER_WORKER`] requests per worker may wait.
    pub fn new(cost: HashCost, workers: usize) -> Result<Self, CryptoError> {
        let workers = workers.max(1);
        Self::with_waiting(cost, workers, workers * DEFAULT_WAITING_PER_WORKER)
    }

    /// Like [`Self::new`], with at most `waiting` requests waiting for a worker; more are
    /// refused with [`CryptoError::Busy`].
    pub fn with_waiting(
        cost: HashCost,
        workers: usize,
        waiting: usize,
    ) -> Result<Self, CryptoError> {
        let workers = workers.max(1);
        let params =
            Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None).map_err(err)?;
        let (tx, rx) = mpsc::channel();
        let rx = Arc::new(Mutex::new(rx));
        let counters = Arc::new(Counters::default());
        for i in 0..workers {
            let (params, rx, counters) = (params.clone(), rx.clone(), counters.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || worker(params, rx, counters))
                .map_err(err)?;
        }
        Ok(Self {
            params,
            jobs: tx,
            queue: Arc::new(Semaphore::new(workers + waiting)),
            counters,
        })
    }

    /// What the workers did so far.
    pub fn counts(&self) -> HashCounts {
        HashCounts {
            computed: self.counters.computed.load(Ordering::Relaxed),
            abandoned: self.counters.abandoned.load(Ordering::Relaxed),
            refused: self.counters.refused.load(Ordering::Relaxed),
        }
    }

    async fn submit<T>(
        &self,
        work: impl FnOnce(oneshot::Sender<Result<T, CryptoError>>) -> Work,
    ) -> Result<T, CryptoError> {
        // The place is the caller's: dropping the call (a client gone, a deadline passed)
        // gives it back even while the job still waits in the channel, where a worker will
        // skip it.
        let awaited = AWAITED.try_with(Awaited::clone).ok();
        if awaited.as_ref().is_some_and(Awaited::abandoned) {
            self.counters.abandoned.fetch_add(1, Ordering::Relaxed);
            return Err(CryptoError::Abandoned);
        }
        let Ok(_place) = self.queue.try_acquire() else {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(CryptoError::Busy {
                retry_after_secs: 1,
            });
        };
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                work: work(reply),
                awaited: awaited.clone(),
            })
            .map_err(|_| err("the hashing workers stopped"))?;
        match awaited {
            // An abandoned request gives its place back at once, not when a worker reaches
            // its job: during a flood of abandoned requests the places stay with live ones.
            Some(request) => tokio::select! {
                answer = answer => answer.map_err(err)?,
                () = request.until_abandoned() => Err(CryptoError::Abandoned),
            },
            None => answer.await.map_err(err)?,
        }
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: &Secret) -> Result<String, CryptoError> {
        let password = password.clone();
        self.submit(|reply| Work::Hash(password, reply)).await
    }

    /// Whether the password matches the PHC string (whose own parameters are used).
    pub async fn verify(&self, phc: &str, password: &Secret) -> Result<bool, CryptoError> {
        let (phc, password) = (phc.to_owned(), password.clone());
        self.submit(|reply| Work::Verify(phc, password, reply))
            .await
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

    /// Polls `f` once, leaving it pending (its place taken, its job queued).
    async fn start<F: std::future::Future + Unpin>(f: &mut F) {
        tokio::select! {
            biased;
            _ = f => panic!("finished at the first poll"),
            () = std::future::ready(()) => {}
        }
    }

    /// A hash whose check keeps a worker busy for a good while (64 MiB, 3 passes).
    async fn slow_phc() -> String {
        let slow = HashCost {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        };
        PasswordHasher::new(slow, 1)
            .unwrap()
            .hash(&Secret::new("slow"))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let (slow, hasher) = (
            slow_phc().await,
            PasswordHasher::with_waiting(cheap(), 1, 1).unwrap(),
        );
        let x = Secret::new("x");
        let cheap_phc = hasher.hash(&x).await.unwrap();
        let pw = Secret::new("slow");
        let mut running = Box::pin(hasher.verify(&slow, &pw));
        start(&mut running).await;
        let mut waiting = Box::pin(hasher.verify(&cheap_phc, &x));
        start(&mut waiting).await;
        // One hashing, one waiting: the next is refused without waiting.
        let refused = hasher.verify(&cheap_phc, &x).await;
        assert!(
            matches!(
                refused,
                Err(CryptoError::Busy {
                    retry_after_secs: 1
                })
            ),
            "{refused:?}"
        );
        assert!(running.await.unwrap());
        assert!(waiting.await.unwrap());
        // Places are given back: the queue takes work again.
        assert!(hasher.verify(&cheap_phc, &Secret::new("x")).await.unwrap());
        assert_eq!(hasher.counts().refused, 1);
    }

    #[tokio::test]
    async fn requests_whose_callers_left_are_not_hashed() {
        let slow = slow_phc().await;
        let hasher = PasswordHasher::with_waiting(cheap(), 1, 10).unwrap();
        let x = Secret::new("x");
        let cheap_phc = hasher.hash(&x).await.unwrap();
        let pw = Secret::new("slow");
        let mut running = Box::pin(hasher.verify(&slow, &pw));
        start(&mut running).await;
        // Ten callers queue behind the slow check and go away (a client disconnecting, a
        // request deadline passing): their places come back at once, their jobs are skipped.
        for _ in 0..10 {
            let mut gone = Box::pin(hasher.verify(&cheap_phc, &x));
            start(&mut gone).await;
        }
        let mut after = Vec::new();
        for _ in 0..10 {
            let mut f = Box::pin(hasher.verify(&cheap_phc, &x));
            start(&mut f).await;
            after.push(f);
        }
        assert!(running.await.unwrap());
        for f in after {
            assert!(f.await.unwrap());
        }
        let counts = hasher.counts();
        // The first hash, the slow check, and the ten that stayed.
        assert_eq!(
            counts,
            HashCounts {
                computed: 12,
                abandoned: 10,
                refused: 0
            }
        );
    }

    #[tokio::test]
    async fn checks_of_an_abandoned_request_are_skipped() {
        let slow = slow_phc().await;
        let hasher = PasswordHasher::with_waiting(cheap(), 1, 10).unwrap();
        let x = Secret::new("x");
        let cheap_phc = hasher.hash(&x).await.unwrap();
        let pw = Secret::new("slow");
        let mut running = Box::pin(hasher.verify(&slow, &pw));
        start(&mut running).await;
        // A request that runs on: its caller's future stays, but the request is abandoned.
        let request = Awaited::new();
        let mut queued = Box::pin(request.clone().scope(hasher.verify(&cheap_phc, &x)));
        start(&mut queued).await;
        request.abandon();
        // The request learns at once, and its place comes back before any worker is free.
        assert!(matches!(queued.await, Err(CryptoError::Abandoned)));
        // Still inside the abandoned request, nothing more is queued.
        let again = request.clone().scope(hasher.verify(&cheap_phc, &x)).await;
        assert!(matches!(again, Err(CryptoError::Abandoned)));
        assert!(running.await.unwrap());
        // An awaited request in scope is hashed as usual; by its answer the worker has passed
        // (and skipped) the abandoned check queued before it.
        let kept = Awaited::new();
        assert!(kept.scope(hasher.verify(&cheap_phc, &x)).await.unwrap());
        let counts = hasher.counts();
        // Skipped by the worker, and refused before queueing.
        assert_eq!((counts.abandoned, counts.computed), (2, 3));
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
