//! `livegate._livegate`: the Rust half of the `livegate` Python package.
//! The idiomatic API (`Client`, `SyncClient`, `Publisher`, ...) is in
//! `python/livegate`; everything that touches the network is here, on the
//! native client of the `livegate` crate.

mod blocking;
mod client;
mod codec;
mod convert;
mod errors;
mod feed;
mod publisher;
mod token;
mod types;
mod window;

use pyo3::prelude::*;

/// The runtime every client of this process runs on.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

#[pymodule]
fn _livegate(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<client::RawClient>()?;
    m.add_class::<client::RawSubscription>()?;
    m.add_class::<client::RawStatus>()?;
    m.add_class::<publisher::RawPublisher>()?;
    m.add_class::<types::Publication>()?;
    m.add_class::<types::Ack>()?;
    m.add_class::<types::StatusEvent>()?;
    m.add_class::<window::Window>()?;
    m.add_function(wrap_pyfunction!(codec::transcode_frame, m)?)?;
    m.add_function(wrap_pyfunction!(codec::decode_publications, m)?)?;
    m.add_function(wrap_pyfunction!(codec::encode_payload, m)?)?;
    Ok(())
}
