//! Write-behind for high-volume audit events that record no state change of their own (a
//! token issued to a client): they are queued and written in batches, one transaction per
//! batch, by one background task. Events that go with a change are never queued here — they
//! commit in the change's own transaction.
//!
//! The price: an event still queued when the process dies is lost (at most one batch, a few
//! milliseconds of issuance). `flush` waits until everything queued so far is written.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gatehouse_domain::audit::AuditEvent;
use gatehouse_domain::store::Store;
use tokio::sync::{mpsc, oneshot};

/// Most events written in one transaction.
const MAX_BATCH: usize = 512;
/// Events queued before callers wait (backpressure instead of unbounded memory).
const QUEUE: usize = 16_384;

enum Msg {
    Event(Box<AuditEvent>),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Msg>,
    lost: Arc<AtomicU64>,
}

impl AuditSink {
    /// Starts the writer task on the current tokio runtime.
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let lost = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_batches(store, rx, lost.clone()));
        Self { tx, lost }
    }

    /// Queues an event; waits only when the queue is full.
    pub async fn record(&self, event: AuditEvent) {
        if self.tx.send(Msg::Event(Box::new(event))).await.is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Returns when every event queued before the call has been written (or has failed).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Events that could not be written.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

async fn write_batches(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Msg>, lost: Arc<AtomicU64>) {
    let mut batch: Vec<AuditEvent> = Vec::with_capacity(MAX_BATCH);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(e) => batch.push(*e),
                Msg::Flush(done) => waiting.push(done),
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            if let Err(e) = store.append_audit_batch(&batch).await {
                lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::error!(error = %e, events = batch.len(), "audit events could not be written");
            }
            batch.clear();
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}
