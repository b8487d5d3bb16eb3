//! Accepting connections, serving them, and shutting down gracefully.
//!
//! Connections are served one by one on hyper (not through `axum::serve`) so
//! that each can be dropped on purpose (an SSE stream whose peer stopped
//! reading) and all can be drained on shutdown.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower_service::Service;

use crate::close::CloseReason;
use crate::transport::ConnControl;
use crate::App;

/// Counts running connection tasks.
#[derive(Default)]
struct Tracker {
    running: AtomicUsize,
    idle: Notify,
}

struct Tracked(Arc<Tracker>);

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Tracker {
    fn track(self: &Arc<Self>) -> Tracked {
        self.running.fetch_add(1, Ordering::AcqRel);
        Tracked(self.clone())
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// How long shutdown waits for connections to say goodbye.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves until `shutdown` resolves, then tells every client to reconnect
/// elsewhere (`disconnect` `shutdown`), finishes requests in flight and
/// returns once connections are closed (or after a few seconds).
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let router = crate::routes::router(app.clone());
    let tracker = Arc::new(Tracker::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (tcp, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, don't spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let control = Arc::new(ConnControl::default());
        let router = router.clone();
        let request_control = control.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(request_control.clone());
            let mut router = router.clone();
            async move { router.call(req).await }
        });
        let mut stop = stop_rx.clone();
        let guard = tracker.track();
        tokio::spawn(async move {
            let _guard = guard;
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = control.aborted() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, conn).await;
                }
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: closing connections");
    app.service.close_all(CloseReason::Shutdown);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN, async {
        tracker.wait_idle().await;
        while app.service.connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = app.service.connection_count(),
            "some connections did not close in time"
        );
    }
}
