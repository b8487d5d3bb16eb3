//! `token_provider`: a Python callable that returns a fresh connection token,
//! called on a worker thread (it may block, say on an HTTP request) whenever
//! the client needs one (`livegate_client::ClientBuilder::token_source`).

use std::future::Future;
use std::sync::Arc;

use pyo3::prelude::*;

/// Calls `provider()` for each token; what it raises or returns instead of
/// a `str` becomes the client's `unauthorized` status error.
pub(crate) fn source(
    provider: Py<PyAny>,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<String, String>> + Send>>
       + Send
       + Sync
       + 'static {
    let provider = Arc::new(provider);
    move || {
        let provider = provider.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                Python::attach(|py| {
                    let token = provider
                        .call0(py)
                        .map_err(|e| format!("token_provider raised: {e}"))?;
                    token.extract::<String>(py).map_err(|_| {
                        "token_provider must return a str (a plain function, not a coroutine)"
                            .to_owned()
                    })
                })
            })
            .await
            .map_err(|e| format!("token_provider did not finish: {e}"))?
        })
    }
}
