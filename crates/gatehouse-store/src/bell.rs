//! The security event bell: a counter that moves after every commit that appended security
//! events, so that a feed stream or an SSF long poll sleeps until its pool may have news
//! instead of polling the log.
//!
//! In this process, a write transaction that appended events rings the bell after its commit
//! succeeds. On PostgreSQL the transaction also sends `NOTIFY gatehouse_security_events` with
//! its pool's id (PostgreSQL delivers it at commit, never for a rollback), and one listener
//! per store rings the bell on every notification, so a commit through any instance on the
//! database wakes the waiters of every instance. A lost notification (the listener's
//! connection dropped) is covered by a ring after every reconnect, and by waiters re-reading
//! the log on a timer: the log, not the bell, is the truth.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{oneshot, watch};

/// The channel appending transactions notify on PostgreSQL, with the pool's id as payload.
pub(crate) const CHANNEL: &str = "gatehouse_security_events";

/// How long the listener waits before reconnecting: doubled from the first to the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_LAST: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub(crate) struct Bell {
    count: watch::Sender<u64>,
    /// Dropped (with the bell, or by [`Bell::stop_listening`]) to end the listener.
    stop: std::sync::Mutex<Option<oneshot::Sender<()>>>,
}

impl Bell {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            count: watch::channel(0).0,
            stop: std::sync::Mutex::new(None),
        })
    }

    pub(crate) fn ring(&self) {
        self.count.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn mark(&self) -> u64 {
        *self.count.borrow()
    }

    /// Waits until the count differs from `mark`; returns the count.
    pub(crate) async fn rung_since(&self, mark: u64) -> u64 {
        let mut rx = self.count.subscribe();
        loop {
            let now = *rx.borrow_and_update();
            if now != mark {
                return now;
            }
            // The sender lives as long as `self`: `changed` cannot fail while we hold it.
            if rx.changed().await.is_err() {
                return *rx.borrow();
            }
        }
    }

    /// Starts the PostgreSQL listener for `database_url`; it runs until the bell is dropped
    /// or [`Bell::stop_listening`] is called.
    pub(crate) fn listen(self: &Arc<Self>, database_url: &str) {
        let (stop_tx, stop_rx) = oneshot::channel();
        if let Ok(mut stop) = self.stop.lock() {
            *stop = Some(stop_tx);
        }
        tokio::spawn(listen(
            database_url.to_owned(),
            Arc::downgrade(self),
            stop_rx,
        ));
    }

    pub(crate) fn stop_listening(&self) {
        if let Ok(mut stop) = self.stop.lock() {
            stop.take();
        }
    }
}

/// Rings `bell` on every notification of [`CHANNEL`], reconnecting with backoff when the
/// connection drops, and once after every (re)connect, since notifications sent while it was
/// down are lost.
async fn listen(url: String, bell: Weak<Bell>, mut stop: oneshot::Receiver<()>) {
    let ring = |bell: &Weak<Bell>| match bell.upgrade() {
        Some(bell) => {
            bell.ring();
            true
        }
        None => false,
    };
    let mut backoff = RECONNECT_FIRST;
    loop {
        let connected = tokio::select! {
            _ = &mut stop => return,
            c = connect(&url) => c,
        };
        match connected {
            Ok(mut listener) => {
                backoff = RECONNECT_FIRST;
                if !ring(&bell) {
                    return;
                }
                loop {
                    let received = tokio::select! {
                        _ = &mut stop => return,
                        r = listener.try_recv() => r,
                    };
                    match received {
                        Ok(Some(_)) => {
                            if !ring(&bell) {
                                return;
                            }
                        }
                        Ok(None) => {
                            tracing::warn!("security event listener lost its connection");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "security event listener failed");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "security event listener cannot connect"),
        }
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(RECONNECT_LAST);
    }
}

async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
