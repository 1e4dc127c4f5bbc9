//! Stopping on SIGINT or SIGTERM: the long-running commands (`serve`,
//! `origin`) watch for it, send GOAWAY, let what is in flight finish and
//! exit 0 (what `systemctl stop` or Ctrl-C expects).

use tokio::sync::watch;

/// A flag that turns true at the first SIGINT or SIGTERM; `what` says on
/// standard error what stops then.
pub(crate) fn on_signal(what: &'static str) -> watch::Receiver<bool> {
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        signal().await;
        eprintln!("{what}: stopping");
        let _ = stop.send(true);
    });
    stopped
}

/// Resolves when the flag is (or turns) true; never if its sender is gone
/// without it.
pub(crate) async fn stopped(mut flag: watch::Receiver<bool>) {
    if flag.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves at SIGINT or (on Unix) SIGTERM.
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
