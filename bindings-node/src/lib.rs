//! The Rust half of the `livegate` Node package (napi-rs).
//!
//! Everything that touches the network runs here, on the native client of
//! `livegate-client` and napi's one tokio runtime per process. The idiomatic
//! API (`Client` as an `EventEmitter`, subscriptions as async iterables,
//! `Error` subclasses) is the hand-written `index.js` over these classes.
//!
//! Items cross into JavaScript in batches, as one JSON text per batch
//! (`JSON.parse` in V8 beats building objects one napi call at a time).
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod batch;
mod client;
mod codec;
mod errors;
mod feed;
mod publisher;

pub use client::{NativeClient, NativeClientOptions, NativeStatus, NativeSubscription};
pub use codec::{decode_publications, transcode_frame};
pub use publisher::NativePublisher;

use napi_derive::napi;

/// A publish acknowledged by the gateway.
#[napi(object)]
pub struct Ack {
    /// The topic.
    pub topic: String,
    /// The topic's epoch.
    pub epoch: String,
    /// Where the publication landed.
    pub offset: i64,
    /// The client-generated id the gateway deduplicates retries by.
    pub msg_id: String,
}

impl From<livegate_client::Ack> for Ack {
    fn from(a: livegate_client::Ack) -> Self {
        Self {
            topic: a.topic,
            epoch: a.position.epoch,
            offset: a.position.offset as i64,
            msg_id: a.msg_id,
        }
    }
}

/// Items ready to hand to JavaScript: `json` is an array of objects; a
/// binary payload appears as `"binary": i`, an index into `binaries`.
#[napi(object)]
pub struct Batch {
    /// The items, as JSON text.
    pub json: String,
    /// Binary payloads referenced from `json`.
    pub binaries: Vec<napi::bindgen_prelude::Buffer>,
}
