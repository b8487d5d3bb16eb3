//! HTTP publishing for servers (`livegate.Publisher`).

use std::sync::Arc;
use std::time::Duration;

use livegate_client::Publisher;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::client::{tls_options, to_payload};
use crate::errors::{from_client, invalid};
use crate::Ack;

#[napi]
pub struct NativePublisher {
    inner: Arc<Publisher>,
}

#[napi]
impl NativePublisher {
    /// `timeout`: ms a publish may take, retries included; `tls_*` as for clients.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        url: String,
        api_key: Option<String>,
        timeout: Option<f64>,
        tls_ca_file: Option<String>,
        tls_pin_sha256: Option<String>,
    ) -> napi::Result<Self> {
        let tls = tls_options(tls_ca_file, tls_pin_sha256.as_deref())?;
        let mut inner = Publisher::with_tls(&url, &tls).map_err(from_client)?;
        if let Some(t) = timeout {
            if !t.is_finite() || t <= 0.0 {
                return Err(invalid(format!(
                    "timeout must be a number of milliseconds > 0, not {t}"
                )));
            }
            inner = inner.timeout(Duration::from_millis(t.round() as u64));
        }
        if let Some(k) = api_key {
            inner = inner.api_key(k);
        }
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Publishes over HTTP; resolves with the ack.
    #[napi]
    pub async fn publish(
        &self,
        topic: String,
        json: Option<String>,
        bytes: Option<Buffer>,
        event: Option<String>,
    ) -> napi::Result<Ack> {
        let payload = to_payload(json, bytes)?;
        let inner = Arc::clone(&self.inner);
        inner
            .publish(&topic, event, payload)
            .await
            .map(Ack::from)
            .map_err(from_client)
    }
}
