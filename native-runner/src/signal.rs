//! The "please stop" signals of a long-running `edgeq` command: ctrl-c and, on
//! Unix, SIGTERM. `edgeq serve` drains its connections on them and `edgeq consume`
//! finishes the message in hand; both wait on [`ctrl_c_or_sigterm`].

use tracing::error;

/// Completes on ctrl-c or (on Unix) SIGTERM. The handlers are installed at the
/// first poll; a signal that cannot be listened for is logged and never completes.
pub async fn ctrl_c_or_sigterm() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
