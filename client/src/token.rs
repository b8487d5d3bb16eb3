//! A source of connection tokens, asked before the first connection, when
//! a token's life is four fifths gone, and when the gateway ends a
//! connection with `token_expired`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What a token source returns: a token, or why none could be had.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// Fetches a fresh connection token (see [`crate::ClientBuilder::token_source`]).
#[derive(Clone)]
pub struct TokenSource(Arc<dyn Fn() -> TokenFuture + Send + Sync>);

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSource")
    }
}

impl TokenSource {
    /// A source that calls `fetch` for each token.
    pub fn new<F, Fut>(fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, String>> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(fetch()) as TokenFuture))
    }

    /// Starts fetching one token.
    pub fn fetch(&self) -> TokenFuture {
        (self.0)()
    }
}

/// How long `token` stays valid from now, when it is a JWT with an `exp`.
pub(crate) fn valid_for_ms(token: &str) -> Option<u64> {
    livegate_core::client::token::expires_at_secs(token)
        .map(|exp| exp.saturating_mul(1000).saturating_sub(crate::now_ms()))
}
