//! HTTP publishing for servers (`livegate.Publisher`, `livegate.AsyncPublisher`).

use std::sync::Arc;
use std::time::Duration;

use livegate_client::Publisher;
use livegate_core::Encoding;
use pyo3::prelude::*;

use crate::blocking::{timeout_arg, wait};
use crate::client::{parse_encoding, tls_options};
use crate::convert::to_payload;
use crate::errors::{error, from_client, Kind};
use crate::types::Ack;

#[pyclass(frozen, module = "livegate._livegate")]
pub struct RawPublisher {
    inner: Arc<Publisher>,
    encoding: Encoding,
}

#[pymethods]
impl RawPublisher {
    #[new]
    #[pyo3(signature = (url, api_key=None, timeout=15.0, encoding="json", ca_file=None, pin_sha256=None))]
    fn new(
        url: &str,
        api_key: Option<String>,
        timeout: f64,
        encoding: &str,
        ca_file: Option<std::path::PathBuf>,
        pin_sha256: Option<String>,
    ) -> PyResult<Self> {
        let timeout = timeout_arg(Some(timeout))?.unwrap_or(Duration::from_secs(15));
        if timeout.is_zero() {
            return Err(error(
                Kind::Argument,
                "invalid",
                "timeout must be more than 0 seconds",
            ));
        }
        let tls = tls_options(ca_file, pin_sha256.as_deref())?;
        let mut inner = Publisher::with_tls(url, &tls)
            .map_err(from_client)?
            .timeout(timeout);
        if let Some(k) = api_key {
            inner = inner.api_key(k);
        }
        Ok(Self {
            inner: Arc::new(inner),
            encoding: parse_encoding(encoding)?,
        })
    }

    #[pyo3(signature = (topic, data, event=None))]
    fn publish<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        data: &Bound<'py, PyAny>,
        event: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let payload = to_payload(data, self.encoding)?;
        let inner = Arc::clone(&self.inner);
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            inner
                .publish(&topic, event, payload)
                .await
                .map(Ack::from)
                .map_err(from_client)
        })
    }

    #[pyo3(signature = (topic, data, event=None))]
    fn publish_blocking(
        &self,
        py: Python<'_>,
        topic: String,
        data: &Bound<'_, PyAny>,
        event: Option<String>,
    ) -> PyResult<Ack> {
        let payload = to_payload(data, self.encoding)?;
        let inner = Arc::clone(&self.inner);
        let fut = async move { inner.publish(&topic, event, payload).await };
        match wait(py, None, fut)? {
            Some(result) => result.map(Ack::from).map_err(from_client),
            None => Err(error(
                Kind::Closed,
                "closed",
                "the runtime is shutting down",
            )),
        }
    }
}
