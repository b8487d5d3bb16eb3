//! One topic's subscribers and fan-out: every live subscriber's queue gets
//! the same `Arc` of a publication; a subscriber whose queue is full is
//! closed as a slow consumer and dropped, and never blocks the others.

use std::collections::HashMap;
use std::sync::Arc;

use super::queue::{Outbound, Outbox};
use crate::wire::SharedPub;

/// A topic as the hub sees it: who receives its publications.
#[derive(Debug)]
pub struct Topic {
    pub(super) name: Arc<str>,
    /// Subscribers receiving live publications.
    pub(super) live: HashMap<u64, Arc<Outbox>>,
    /// Subscribers whose replay is being read (see [`super::handover`]):
    /// live publications wait in their buffer meanwhile.
    pub(super) joining: HashMap<u64, Joining>,
}

/// A subscriber between registration and its replay.
#[derive(Debug)]
pub(super) struct Joining {
    pub(super) outbox: Arc<Outbox>,
    pub(super) buffered: Vec<SharedPub>,
}

impl Topic {
    pub(super) fn new(name: Arc<str>) -> Self {
        Self {
            name,
            live: HashMap::new(),
            joining: HashMap::new(),
        }
    }

    /// Offers `publication` to every subscriber; returns how many live
    /// queues took it.
    pub(super) fn deliver(&mut self, publication: &SharedPub) -> u64 {
        let mut delivered = 0;
        let mut dropped = Vec::new();
        for (id, outbox) in &self.live {
            if outbox.send(Outbound::Publication(publication.clone())) {
                delivered += 1;
            } else {
                dropped.push(*id);
            }
        }
        for id in dropped {
            self.live.remove(&id);
        }
        if !self.joining.is_empty() {
            self.buffer(publication);
        }
        delivered
    }

    /// Keeps `publication` for every joining subscriber, bounded by its
    /// queue's size like a live one.
    fn buffer(&mut self, publication: &SharedPub) {
        self.joining.retain(|_, j| {
            if j.buffered.len() >= j.outbox.capacity() {
                j.outbox.cut_slow();
                return false;
            }
            j.buffered.push(publication.clone());
            true
        });
    }

    /// Removes a subscriber, live or joining; returns whether there was one.
    pub(super) fn remove(&mut self, conn_id: u64) -> bool {
        self.live.remove(&conn_id).is_some() || self.joining.remove(&conn_id).is_some()
    }

    /// Whether the connection is subscribed or joining.
    pub(super) fn has(&self, conn_id: u64) -> bool {
        self.live.contains_key(&conn_id) || self.joining.contains_key(&conn_id)
    }
}
