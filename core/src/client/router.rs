//! From the engine's events to the app's handles: per topic the
//! subscriptions that share it (the topic is held while one is left, or
//! while it is pinned), and per `msg_id` whoever waits for the publish.
//!
//! The engine subscribes a topic once however many handles want it; the
//! router counts the handles. It is generic over the handles, so each driver
//! keeps its own (a tokio channel, a JS callback, a Python future).

use std::collections::{HashMap, HashSet};

use crate::error::ErrorCode;
use crate::protocol::{Position, Publication};

use super::Event;

/// What one subscription sees.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionEvent {
    /// A publication, each exactly once and in order.
    Publication(Publication),
    /// The subscription is live.
    Subscribed(Position),
    /// After a reconnect: `false` means publications were missed for good
    /// (history too short, or the gateway restarted): reload your state.
    Recovered {
        /// Whether nothing was lost.
        recovered: bool,
        /// The position the stream continues from.
        position: Position,
    },
    /// The gateway refused the subscription; the stream ends after this.
    Failed {
        /// Why.
        code: ErrorCode,
        /// Explanation.
        message: String,
    },
}

/// A publish acknowledged by the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The client-generated id (the gateway's dedupe key).
    pub msg_id: String,
    /// The topic.
    pub topic: String,
    /// Where the publication landed.
    pub position: Position,
}

/// A publish that will not be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishFailure {
    /// Why: the gateway's code, or [`ErrorCode::Closed`] when the client
    /// closed first.
    pub code: ErrorCode,
    /// Explanation.
    pub message: String,
}

/// Where an event goes.
#[derive(Debug)]
pub enum Routed<'a, S, A> {
    /// Hand `event` to each of `subs` (clone it for all but the last).
    Topic {
        /// The topic's subscriptions (possibly none: a pinned topic).
        subs: &'a mut Vec<S>,
        /// What they see.
        event: SubscriptionEvent,
    },
    /// The topic was refused: hand `event` to each of `subs`, which the
    /// router no longer holds.
    Ended {
        /// The topic's former subscriptions.
        subs: Vec<S>,
        /// What they see (`Failed`).
        event: SubscriptionEvent,
    },
    /// A publish was answered: give the outcome to whoever waits.
    Answered {
        /// The waiter registered with [`Router::expect_ack`].
        waiter: A,
        /// The ack, or why there is none.
        outcome: Result<Ack, PublishFailure>,
    },
    /// Not about a subscription or a publish (state changes, errors), or
    /// about one nobody holds any more.
    Other(Event),
}

/// Topic → subscriptions, pinned topics, `msg_id` → waiter. See the module docs.
#[derive(Debug)]
pub struct Router<S, A> {
    topics: HashMap<String, Vec<S>>,
    pinned: HashSet<String>,
    acks: HashMap<String, A>,
}

impl<S, A> Default for Router<S, A> {
    fn default() -> Self {
        Self {
            topics: HashMap::new(),
            pinned: HashSet::new(),
            acks: HashMap::new(),
        }
    }
}

impl<S, A> Router<S, A> {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `topic` subscribed even when no handle holds it (topics the
    /// app named up front, whose events feed a general event stream).
    pub fn pin(&mut self, topic: &str) {
        self.pinned.insert(topic.to_owned());
        self.topics.entry(topic.to_owned()).or_default();
    }

    /// Adds a subscription to `topic` (after the engine accepted the subscribe).
    pub fn add(&mut self, topic: &str, sub: S) {
        self.topics.entry(topic.to_owned()).or_default().push(sub);
    }

    /// How many subscriptions hold `topic`.
    pub fn count(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, Vec::len)
    }

    /// Whether the router holds `topic` (by a subscription or a pin).
    pub fn holds(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }

    /// A subscription of `topic` went away: keeps those `live` says are
    /// still there. Returns true when the topic is no longer wanted, so the
    /// engine should unsubscribe it.
    pub fn release(&mut self, topic: &str, live: impl FnMut(&S) -> bool) -> bool {
        let Some(subs) = self.topics.get_mut(topic) else {
            return false;
        };
        subs.retain(live);
        if subs.is_empty() && !self.pinned.contains(topic) {
            self.topics.remove(topic);
            return true;
        }
        false
    }

    /// Registers who waits for the publish `msg_id`.
    pub fn expect_ack(&mut self, msg_id: String, waiter: A) {
        self.acks.insert(msg_id, waiter);
    }

    /// Publishes still waiting for their answer.
    pub fn pending_acks(&self) -> usize {
        self.acks.len()
    }

    /// Takes every waiter (the client stopped: answer them all).
    pub fn drain_acks(&mut self) -> impl Iterator<Item = A> + '_ {
        self.acks.drain().map(|(_, a)| a)
    }

    /// Where `event` goes.
    pub fn route(&mut self, event: Event) -> Routed<'_, S, A> {
        match event {
            Event::Published { ref msg_id, .. } | Event::PublishFailed { ref msg_id, .. } => {
                let Some(waiter) = self.acks.remove(msg_id) else {
                    return Routed::Other(event);
                };
                let outcome = match event {
                    Event::Published {
                        msg_id,
                        topic,
                        position,
                    } => Ok(Ack {
                        msg_id,
                        topic,
                        position,
                    }),
                    Event::PublishFailed { code, message, .. } => {
                        Err(PublishFailure { code, message })
                    }
                    _ => return Routed::Other(event),
                };
                Routed::Answered { waiter, outcome }
            }
            Event::SubscribeFailed {
                topic,
                code,
                message,
            } => {
                // The engine dropped the topic; a pin cannot keep it.
                self.pinned.remove(&topic);
                let subs = self.topics.remove(&topic).unwrap_or_default();
                Routed::Ended {
                    subs,
                    event: SubscriptionEvent::Failed { code, message },
                }
            }
            Event::Publication(p) => match self.topics.get_mut(&p.topic) {
                Some(subs) => Routed::Topic {
                    subs,
                    event: SubscriptionEvent::Publication(p),
                },
                None => Routed::Other(Event::Publication(p)),
            },
            Event::Subscribed { topic, position } => match self.topics.get_mut(&topic) {
                Some(subs) => Routed::Topic {
                    subs,
                    event: SubscriptionEvent::Subscribed(position),
                },
                None => Routed::Other(Event::Subscribed { topic, position }),
            },
            Event::Recovered {
                topic,
                recovered,
                position,
            } => match self.topics.get_mut(&topic) {
                Some(subs) => Routed::Topic {
                    subs,
                    event: SubscriptionEvent::Recovered {
                        recovered,
                        position,
                    },
                },
                None => Routed::Other(Event::Recovered {
                    topic,
                    recovered,
                    position,
                }),
            },
            other => Routed::Other(other),
        }
    }
}
