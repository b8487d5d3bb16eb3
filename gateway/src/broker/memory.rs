//! The embedded single-node broker: each topic's log (`History`) and dedupe
//! window in memory, for as long as the process lives.
//!
//! A publish is sequenced, appended, and handed to the sink under the
//! topic's lock, so the sink sees each topic's publications in offset order
//! and every one is readable before it is delivered. Everything here is
//! synchronous; the [`Broker`] methods wrap the results in ready futures.

use std::sync::Arc;

use livegate_core::protocol::{Position, Publication};
use livegate_core::topic::Namespaces;

use super::dedupe::DedupeWindow;
use super::topics::{lock, SharedLog, TopicTable};
use super::{BoxFuture, Broker, BrokerError, Page, PublishRequest, Published, ReadError, Sink};
use crate::stats::Stats;
use crate::wire::SharedPublication;

/// The in-memory broker.
pub struct MemoryBroker {
    topics: TopicTable,
    dedupe: DedupeWindow,
    sink: Arc<dyn Sink>,
}

impl MemoryBroker {
    /// A broker keeping history as `namespaces` say, remembering `msg_id`s
    /// for `dedupe`, delivering to `sink`.
    pub fn new(
        namespaces: Namespaces,
        dedupe: DedupeWindow,
        stats: Arc<Stats>,
        sink: Arc<dyn Sink>,
    ) -> Self {
        Self {
            topics: TopicTable::new(namespaces, stats),
            dedupe,
            sink,
        }
    }

    fn topic(&self, name: &str) -> SharedLog {
        self.topics.get_or_create(name, 0, crate::token::new_epoch)
    }

    /// Sequences and delivers a publication at `now_ms`. Of two concurrent
    /// publishes with one `msg_id` exactly one is published: the check and
    /// the append happen under the topic's lock.
    pub fn publish_at(&self, request: PublishRequest<'_>, now_ms: u64) -> Published {
        let t = self.topic(request.topic);
        let mut st = lock(&t);
        let window = self.dedupe;
        let msg_id = request.msg_id.as_deref().filter(|_| window.enabled());
        if let Some(position) = msg_id.and_then(|id| st.duplicate(window, id, now_ms)) {
            return Published {
                position,
                duplicate: true,
            };
        }
        let publication = Arc::new(SharedPublication::new(Publication {
            topic: st.name.to_string(),
            epoch: st.history.epoch().to_owned(),
            offset: st.history.next_offset(),
            event: request.event,
            data: request.data,
            time_ms: now_ms,
        }));
        let position = st.append(publication.clone(), msg_id, window);
        // Under the lock: the sink sees the topic's publications in order.
        self.sink.deliver(publication);
        drop(st);
        Published {
            position,
            duplicate: false,
        }
    }

    /// A page of the log at `now_ms` (see [`Broker::read`]).
    pub fn read_at(
        &self,
        topic: &str,
        since: Option<&Position>,
        limit: usize,
        now_ms: u64,
    ) -> Result<Page, ReadError> {
        lock(&self.topic(topic)).page(since, limit, now_ms)
    }

    /// The topic's latest position.
    pub fn position_now(&self, topic: &str) -> Position {
        lock(&self.topic(topic)).history.position()
    }

    #[cfg(test)]
    fn remembered(&self, topic: &str) -> usize {
        lock(&self.topic(topic)).dedupe.len()
    }
}

impl Broker for MemoryBroker {
    fn publish<'a>(
        &'a self,
        request: PublishRequest<'a>,
    ) -> BoxFuture<'a, Result<Published, BrokerError>> {
        let published = self.publish_at(request, crate::now_ms());
        Box::pin(std::future::ready(Ok(published)))
    }

    fn read<'a>(
        &'a self,
        topic: &'a str,
        since: Option<&'a Position>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page, ReadError>> {
        let page = self.read_at(topic, since, limit, crate::now_ms());
        Box::pin(std::future::ready(page))
    }

    fn position<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Position, BrokerError>> {
        Box::pin(std::future::ready(Ok(self.position_now(topic))))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::SharedPub;
    use livegate_core::Payload;
    use std::sync::Mutex;

    /// A sink that records the offsets it is handed.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, u64)>>);

    impl Sink for Recorder {
        fn deliver(&self, p: SharedPub) {
            lock(&self.0).push((p.publication.topic.clone(), p.publication.offset));
        }
    }

    fn broker(window: DedupeWindow) -> (MemoryBroker, Arc<Recorder>) {
        let rec = Arc::new(Recorder::default());
        let b = MemoryBroker::new(
            Namespaces::default(),
            window,
            Arc::new(Stats::default()),
            rec.clone(),
        );
        (b, rec)
    }

    fn window(max_ids: usize, max_age_secs: u64) -> MemoryBroker {
        broker(DedupeWindow {
            max_ids,
            max_age_ms: max_age_secs * 1000,
        })
        .0
    }

    fn req<'a>(topic: &'a str, msg_id: Option<&str>) -> PublishRequest<'a> {
        PublishRequest {
            topic,
            event: None,
            data: Payload::from_json("1".to_owned()).unwrap(),
            msg_id: msg_id.map(str::to_owned),
        }
    }

    fn delivered(rec: &Recorder, topic: &str) -> Vec<u64> {
        lock(&rec.0)
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, o)| *o)
            .collect()
    }

    #[test]
    fn sequences_appends_and_delivers_in_order() {
        let (b, rec) = broker(DedupeWindow::default());
        for i in 1..=5 {
            assert_eq!(b.publish_at(req("t", None), i).position.offset, i);
        }
        assert_eq!(delivered(&rec, "t"), vec![1, 2, 3, 4, 5]);
        let page = b.read_at("t", None, 2, 6).unwrap();
        assert_eq!(page.position.offset, 5);
        let offsets: Vec<u64> = page
            .publications
            .iter()
            .map(|p| p.publication.offset)
            .collect();
        assert_eq!((offsets, page.more), (vec![1, 2], true));
        let since = Position {
            epoch: page.position.epoch.clone(),
            offset: 3,
        };
        let rest = b.read_at("t", Some(&since), 10, 6).unwrap();
        assert_eq!(rest.publications.len(), 2);
        let other = Position {
            epoch: "other".into(),
            offset: 1,
        };
        assert!(matches!(
            b.read_at("t", Some(&other), 10, 6),
            Err(ReadError::Unrecoverable(_))
        ));
        assert_eq!(b.position_now("empty").offset, 0);
    }

    #[test]
    fn duplicate_msg_id_answers_the_first_publication_and_is_not_delivered() {
        let (b, rec) = broker(DedupeWindow::default());
        let first = b.publish_at(req("t", Some("m-1")), 1);
        assert!(!first.duplicate);
        assert_eq!(first.position.offset, 1);
        let again = b.publish_at(req("t", Some("m-1")), 2);
        assert!(again.duplicate);
        assert_eq!(again.position, first.position, "same epoch and offset");
        assert_eq!(
            delivered(&rec, "t"),
            vec![1],
            "published and delivered once"
        );
        assert_eq!(b.read_at("t", None, 10, 3).unwrap().publications.len(), 1);
        // Other ids, no id, and the same id on another topic are new.
        assert_eq!(b.publish_at(req("t", Some("m-2")), 3).position.offset, 2);
        assert_eq!(b.publish_at(req("t", None), 4).position.offset, 3);
        let elsewhere = b.publish_at(req("u", Some("m-1")), 5);
        assert!(!elsewhere.duplicate);
        assert_eq!(elsewhere.position.offset, 1);
    }

    #[test]
    fn concurrent_duplicates_publish_once() {
        let (b, rec) = broker(DedupeWindow::default());
        let b = Arc::new(b);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| b.publish_at(req("t", Some(&format!("id-{i}"))), 1))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<Vec<Published>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for i in 0..50 {
            let answers: Vec<&Published> = results.iter().map(|r| &r[i]).collect();
            assert_eq!(answers.iter().filter(|p| !p.duplicate).count(), 1, "id-{i}");
            assert!(answers.iter().all(|p| p.position == answers[0].position));
        }
        assert_eq!(delivered(&rec, "t"), (1..=50).collect::<Vec<_>>());
    }

    #[test]
    fn window_evicts_the_oldest_ids_by_count() {
        let b = window(2, 300);
        let a = b.publish_at(req("t", Some("a")), 1);
        b.publish_at(req("t", Some("b")), 2);
        assert!(b.publish_at(req("t", Some("a")), 3).duplicate);
        b.publish_at(req("t", Some("c")), 4); // evicts "a"
        assert_eq!(b.remembered("t"), 2);
        let a2 = b.publish_at(req("t", Some("a")), 5);
        assert!(!a2.duplicate, "a left the window: published again");
        assert_eq!((a.position.offset, a2.position.offset), (1, 4));
        // "b" was evicted by "a"'s second publication; "c" and "a" remain.
        assert!(!b.publish_at(req("t", Some("b")), 6).duplicate);
        assert!(b.publish_at(req("t", Some("b")), 7).duplicate);
        assert_eq!(b.remembered("t"), 2);
    }

    #[test]
    fn window_evicts_ids_by_age() {
        let b = window(1000, 10);
        let first = b.publish_at(req("t", Some("a")), 1_000);
        let at_edge = b.publish_at(req("t", Some("a")), 11_000);
        assert!(
            at_edge.duplicate,
            "an id exactly max_age old is still remembered"
        );
        assert_eq!(at_edge.position, first.position);
        let later = b.publish_at(req("t", Some("a")), 11_001);
        assert!(!later.duplicate, "older than the window: published again");
        assert_eq!(later.position.offset, 2);
        // Old ids go even when only other ids are published.
        b.publish_at(req("t", Some("b")), 12_000);
        b.publish_at(req("t", Some("c")), 30_000);
        assert_eq!(b.remembered("t"), 1);
        // A clock that steps back: "d" counts from the newest time seen
        // (30 s), so the queue stays sorted by time.
        b.publish_at(req("t", Some("d")), 25_000);
        assert!(b.publish_at(req("t", Some("c")), 25_001).duplicate);
        assert!(b.publish_at(req("t", Some("d")), 40_000).duplicate);
        assert!(!b.publish_at(req("t", Some("c")), 40_001).duplicate);
    }

    #[test]
    fn zero_window_turns_dedupe_off() {
        for b in [window(0, 300), window(1000, 0)] {
            b.publish_at(req("t", Some("a")), 1);
            let again = b.publish_at(req("t", Some("a")), 2);
            assert!(!again.duplicate);
            assert_eq!(again.position.offset, 2);
            assert_eq!(b.remembered("t"), 0);
        }
    }
}
