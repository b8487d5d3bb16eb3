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

#[cfg(test)]
mod tests {
    use livegate_core::protocol::{Position, Publication};
    use livegate_core::{Encoding, Payload};

    use crate::close::CloseReason;
    use crate::hub::{Hub, Joined, Outbound, Outbox, Receiver};
    use crate::stats::Stats;
    use crate::wire::{SharedPub, SharedPublication};

    use super::*;

    fn publication(offset: u64) -> SharedPub {
        Arc::new(SharedPublication::new(Publication {
            topic: "t".into(),
            epoch: "e".into(),
            offset,
            event: None,
            data: Payload::from_json("{\"x\":1}".to_owned()).unwrap(),
            time_ms: 0,
        }))
    }

    fn subscribe(hub: &Hub, c: &Arc<Outbox>, rx: &mut Receiver) {
        hub.join(c, "t").unwrap();
        let start = Joined {
            id: None,
            position: Position {
                epoch: "e".into(),
                offset: 0,
            },
            recovered: false,
            replay: Vec::new(),
        };
        hub.complete_join(c, "t", start).unwrap();
        assert!(matches!(rx.try_recv(), Some(Outbound::Subscribed(_))));
    }

    #[test]
    fn fan_out_shares_one_publication_and_its_bytes() {
        let hub = Hub::new(Arc::new(Stats::default()));
        let (a, mut ra) = hub.connect(16);
        let (b, mut rb) = hub.connect(16);
        subscribe(&hub, &a, &mut ra);
        subscribe(&hub, &b, &mut rb);
        hub.deliver(publication(1));
        let (Some(Outbound::Publication(pa)), Some(Outbound::Publication(pb))) =
            (ra.try_recv(), rb.try_recv())
        else {
            panic!("both subscribers get the publication");
        };
        assert!(Arc::ptr_eq(&pa, &pb));
        let (fa, fb) = (pa.frame(Encoding::Json), pb.frame(Encoding::Json));
        assert_eq!(fa.as_ptr(), fb.as_ptr(), "encoded once, bytes shared");
        assert_eq!(hub.stats.snapshot().messages_out, 2);
    }

    #[test]
    fn slow_consumer_is_cut_and_others_keep_receiving() {
        let hub = Hub::new(Arc::new(Stats::default()));
        let (slow, mut slow_rx) = hub.connect(4);
        let (fast, mut fast_rx) = hub.connect(1024);
        subscribe(&hub, &slow, &mut slow_rx);
        subscribe(&hub, &fast, &mut fast_rx);
        for o in 1..=100 {
            hub.deliver(publication(o));
        }
        assert_eq!(slow.close_reason(), Some(CloseReason::SlowConsumer));
        assert_eq!(hub.stats.snapshot().slow_consumers_dropped, 1);
        let mut got = Vec::new();
        while let Some(Outbound::Publication(p)) = fast_rx.try_recv() {
            got.push(p.publication.offset);
        }
        assert_eq!(got, (1..=100).collect::<Vec<_>>());
        assert_eq!(fast.close_reason(), None);
        assert!(!hub.unsubscribe(slow.id, "t"), "the slow one was dropped");
    }
}
