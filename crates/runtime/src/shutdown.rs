//! Ordered shutdown.
//!
//! One [`Shutdown`] per process. SIGTERM or SIGINT cancels its token; every role then
//! stops in the same order so that nothing acknowledged is lost:
//! 1. the front door closes (gRPC stops accepting streams, in-flight acks finish),
//! 2. producers flush to the bus,
//! 3. consumers finish the record in hand, write it, and commit their offsets,
//! 4. connections close.
//!
//! Each stage is a task that waits on the token and returns when its part is done; the
//! binary awaits them in that order.

use tokio_util::sync::CancellationToken;

/// The process-wide shutdown signal.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// A token that is cancelled when shutdown begins.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when shutdown begins.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// Cancels the token on the first SIGTERM or SIGINT (Ctrl-C). Spawns a task; returns at once.
    pub fn install_signal_handlers(&self) {
        let token = self.token.clone();
        tokio::spawn(async move {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                match signal(SignalKind::terminate()) {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
                            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot install SIGTERM handler");
                        let _ = ctrl_c.await;
                    }
                }
            }
            #[cfg(not(unix))]
            {
                let _ = ctrl_c.await;
            }
            token.cancel();
        });
    }
}
