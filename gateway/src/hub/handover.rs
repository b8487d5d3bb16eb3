//! Subscribing: the replay read from the broker, then live publications,
//! with no gap and no duplicate, although the read is asynchronous.
//!
//! 1. [`Hub::join`] registers the subscriber as joining, under the topic's
//!    lock: from then on every publication the broker delivers is kept in
//!    its buffer.
//! 2. The caller reads the replay (or just the position) from the broker.
//!    The broker's contract is that a publication is readable before it is
//!    delivered to the hub, so everything delivered before step 1 is in
//!    the read, and everything delivered after it is in the buffer.
//! 3. [`Hub::complete_join`], under the topic's lock again, queues the
//!    `subscribed` answer with the replay, then the buffered publications
//!    the read did not already cover (same epoch and offset at most the
//!    read's position are dropped), and makes the subscriber live. Nothing
//!    can be delivered between the flush and the switch: both happen under
//!    the lock that delivery takes.

use std::sync::Arc;

use livegate_core::protocol::Position;

use super::fanout::Joining;
use super::lock;
use super::queue::{Outbound, Outbox, SubscribedItem};
use super::registry::Hub;
use crate::wire::SharedPub;

/// Why a subscribe was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    /// The connection already has this topic.
    AlreadySubscribed,
    /// The connection is closing, or left the topic while joining.
    Closing,
}

/// What the broker said about a joining subscriber's start.
#[derive(Debug)]
pub struct Joined {
    /// Request id of the `subscribe`.
    pub id: Option<u64>,
    /// The topic's position when the replay was read.
    pub position: Position,
    /// Whether `replay` covers everything after the client's position.
    pub recovered: bool,
    /// The replay, oldest first.
    pub replay: Vec<SharedPub>,
}

impl Hub {
    /// Step 1: registers `outbox` as joining `topic`.
    pub fn join(&self, outbox: &Arc<Outbox>, topic: &str) -> Result<(), SubscribeError> {
        let t = self.topic(topic);
        let mut st = lock(&t);
        if st.has(outbox.id) {
            return Err(SubscribeError::AlreadySubscribed);
        }
        st.joining.insert(
            outbox.id,
            Joining {
                outbox: outbox.clone(),
                buffered: Vec::new(),
            },
        );
        Ok(())
    }

    /// Step 3: queues the `subscribed` answer and what was buffered meanwhile,
    /// and makes the subscriber live.
    pub fn complete_join(
        &self,
        outbox: &Outbox,
        topic: &str,
        joined: Joined,
    ) -> Result<(), SubscribeError> {
        let t = self.topic(topic);
        let mut st = lock(&t);
        let Some(joining) = st.joining.remove(&outbox.id) else {
            // Cut as a slow consumer, or disconnected, while the read ran.
            return Err(SubscribeError::Closing);
        };
        let Joined {
            id,
            position,
            recovered,
            replay,
        } = joined;
        let mut delivered = replay.len() as u64;
        let item = Outbound::Subscribed(Box::new(SubscribedItem {
            id,
            topic: st.name.clone(),
            position: position.clone(),
            recovered,
            replay,
        }));
        if !joining.outbox.send(item) {
            return Err(SubscribeError::Closing);
        }
        for p in joining.buffered {
            let covered =
                p.publication.epoch == position.epoch && p.publication.offset <= position.offset;
            if covered {
                continue; // Already in the replay, or before the start.
            }
            if !joining.outbox.send(Outbound::Publication(p)) {
                return Err(SubscribeError::Closing);
            }
            delivered += 1;
        }
        st.live.insert(outbox.id, joining.outbox);
        drop(st);
        self.stats.delivered(delivered);
        Ok(())
    }

    /// Undoes step 1 when the read failed.
    pub fn abort_join(&self, conn_id: u64, topic: &str) {
        self.unsubscribe(conn_id, topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::close::CloseReason;
    use crate::hub::Receiver;
    use crate::stats::Stats;
    use crate::wire::SharedPublication;
    use livegate_core::protocol::Publication;
    use livegate_core::Payload;

    fn publication(epoch: &str, offset: u64) -> SharedPub {
        Arc::new(SharedPublication::new(Publication {
            topic: "t".into(),
            epoch: epoch.into(),
            offset,
            event: None,
            data: Payload::from_json("1".to_owned()).unwrap(),
            time_ms: 0,
        }))
    }

    fn joined(offset: u64, replay: Vec<SharedPub>) -> Joined {
        Joined {
            id: Some(1),
            position: Position {
                epoch: "e".into(),
                offset,
            },
            recovered: !replay.is_empty(),
            replay,
        }
    }

    /// Offsets queued: the replay inside `subscribed` (marked by a leading
    /// 0), then live ones.
    fn queued(rx: &mut Receiver) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(item) = rx.try_recv() {
            match item {
                Outbound::Subscribed(s) => {
                    out.push(0);
                    out.extend(s.replay.iter().map(|p| p.publication.offset));
                }
                Outbound::Publication(p) => out.push(p.publication.offset),
                other => panic!("unexpected {other:?}"),
            }
        }
        out
    }

    #[test]
    fn what_arrives_during_the_read_follows_the_replay_once() {
        let hub = Hub::new(Arc::new(Stats::default()));
        let (c, mut rx) = hub.connect(16);
        hub.join(&c, "t").unwrap();
        // Delivered while the replay is read: 5 and 6 are in the read too, 7
        // and 8 are not.
        for o in 5..=8 {
            hub.deliver(publication("e", o));
        }
        assert_eq!(
            queued(&mut rx),
            Vec::<u64>::new(),
            "nothing before subscribed"
        );
        let replay = (3..=6).map(|o| publication("e", o)).collect();
        hub.complete_join(&c, "t", joined(6, replay)).unwrap();
        hub.deliver(publication("e", 9));
        assert_eq!(queued(&mut rx), vec![0, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(hub.stats.snapshot().messages_out, 7);
        assert_eq!(hub.join(&c, "t"), Err(SubscribeError::AlreadySubscribed));
    }

    #[test]
    fn a_new_epoch_in_the_buffer_is_delivered() {
        let hub = Hub::new(Arc::new(Stats::default()));
        let (c, mut rx) = hub.connect(16);
        hub.join(&c, "t").unwrap();
        hub.deliver(publication("e", 2));
        hub.deliver(publication("f", 1));
        hub.complete_join(&c, "t", joined(2, Vec::new())).unwrap();
        assert_eq!(queued(&mut rx), vec![0, 1]);
    }

    #[test]
    fn a_joining_subscriber_that_falls_behind_is_cut() {
        let hub = Hub::new(Arc::new(Stats::default()));
        let (c, _rx) = hub.connect(4);
        hub.join(&c, "t").unwrap();
        for o in 1..=5 {
            hub.deliver(publication("e", o));
        }
        assert_eq!(c.close_reason(), Some(CloseReason::SlowConsumer));
        assert_eq!(
            hub.complete_join(&c, "t", joined(0, Vec::new())),
            Err(SubscribeError::Closing)
        );
        assert_eq!(hub.stats.snapshot().slow_consumers_dropped, 1);
    }

    #[test]
    fn leaving_while_joining_and_aborting_leave_nothing_behind() {
        let hub = Hub::new(Arc::new(Stats::default()));
        let (c, mut rx) = hub.connect(8);
        hub.join(&c, "t").unwrap();
        hub.disconnect(&c, ["t"]);
        assert_eq!(
            hub.complete_join(&c, "t", joined(0, Vec::new())),
            Err(SubscribeError::Closing)
        );
        hub.join(&c, "t").unwrap();
        hub.abort_join(c.id, "t");
        hub.deliver(publication("e", 1));
        assert_eq!(queued(&mut rx), Vec::<u64>::new());
        hub.join(&c, "t").unwrap();
    }
}
