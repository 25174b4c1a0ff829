//! Event delivery to plugins: a bounded queue filled by emitters and drained by the host's
//! dispatcher task, so a handler runs after the emitting call returned, and a depth count
//! that stops handler-emits-event-triggers-handler cascades.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;

use crate::convert;
use crate::error::HostError;
use crate::plugin::{Call, Plugin, Reply};
use crate::ports::{Event, PortError};

/// Events queued for delivery to plugins before emitters start seeing "queue full".
pub(crate) const DELIVERY_QUEUE: usize = 4096;

/// An event handler that emits an event that triggers a handler ... stops this deep.
pub const MAX_EVENT_DEPTH: u32 = 8;

/// One event to deliver to the plugins subscribed to its kind.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) event_id: String,
    pub(crate) kind: String,
    /// 1 for an event emitted outside any handler, n + 1 for one emitted by a handler of an
    /// event at depth n.
    pub(crate) depth: u32,
}

/// The sending side of the event delivery queue, counting deliveries not yet run.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryQueue {
    sender: mpsc::Sender<Delivery>,
    pending: Arc<AtomicUsize>,
    /// The kinds some plugin subscribed to, known once every plugin registered. Until then
    /// every event is queued (a plugin registered earlier may want it).
    subscribed: Arc<OnceLock<HashSet<String>>>,
}

impl DeliveryQueue {
    /// A queue over `sender`, counting in `pending`.
    pub(crate) fn new(sender: mpsc::Sender<Delivery>, pending: Arc<AtomicUsize>) -> DeliveryQueue {
        DeliveryQueue {
            sender,
            pending,
            subscribed: Arc::default(),
        }
    }

    /// A queue that accepts nothing (for a host with no plugins).
    pub(crate) fn closed(pending: Arc<AtomicUsize>) -> DeliveryQueue {
        let (sender, _) = mpsc::channel(1);
        DeliveryQueue::new(sender, pending)
    }

    /// Records the event kinds plugins subscribed to; from now on events of other kinds are
    /// not queued at all (they are stored and broadcast, and nobody would handle them).
    pub(crate) fn set_subscribed(&self, kinds: HashSet<String>) {
        let _ = self.subscribed.set(kinds);
    }

    /// Queues a delivery; returns false (the event stays stored) when the queue is full.
    /// An event of a kind no plugin subscribed to is not queued, and that is not a failure.
    pub(crate) fn send(&self, delivery: &Delivery) -> bool {
        if let Some(subscribed) = self.subscribed.get() {
            if !subscribed.contains(&delivery.kind) {
                return true;
            }
        }
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.sender.try_send(delivery.clone()).is_ok() {
            true
        } else {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            false
        }
    }
}

/// Calls `handle-event` on each subscriber in turn; one failing never stops the others.
pub(crate) async fn deliver(
    subscribers: &[&Plugin],
    event: &Event,
    depth: u32,
) -> Vec<(String, Result<(), HostError>)> {
    let mut results = Vec::new();
    for plugin in subscribers {
        let site = plugin.site(&format!("handle-event `{}`", event.kind));
        if depth > MAX_EVENT_DEPTH {
            tracing::warn!(plugin = %plugin.id(), event = %event.id, kind = %event.kind,
                depth, "event cascade too deep; not delivered");
            let error = PortError::LimitExceeded(format!(
                "event cascade deeper than {MAX_EVENT_DEPTH} handlers"
            ));
            results.push((
                plugin.id().to_string(),
                Err(HostError::Plugin { site, error }),
            ));
            continue;
        }
        let call = Call::Event(convert::event(event.clone()));
        let result = match plugin.invoke(call, depth).await {
            Ok(Reply::Unit(Ok(()))) => Ok(()),
            Ok(Reply::Unit(Err(error))) => Err(HostError::Plugin {
                site,
                error: error.into(),
            }),
            Ok(other) => Err(HostError::Engine(format!(
                "{site}: unexpected reply {other:?}"
            ))),
            Err(error) => Err(error),
        };
        results.push((plugin.id().to_string(), result));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(kind: &str) -> Delivery {
        Delivery {
            event_id: "e1".into(),
            kind: kind.into(),
            depth: 1,
        }
    }

    #[test]
    fn only_subscribed_kinds_are_queued_once_registration_is_done() {
        let (sender, mut receiver) = mpsc::channel(8);
        let pending = Arc::new(AtomicUsize::new(0));
        let queue = DeliveryQueue::new(sender, pending.clone());

        // While plugins register, every kind is queued.
        assert!(queue.send(&delivery("infra.incident.opened")));
        assert_eq!(pending.load(Ordering::SeqCst), 1);
        assert_eq!(receiver.try_recv().unwrap().kind, "infra.incident.opened");
        pending.store(0, Ordering::SeqCst);

        queue.set_subscribed(["content.published".to_string()].into());
        assert!(
            queue.send(&delivery("infra.incident.opened")),
            "not a failure"
        );
        assert!(
            receiver.try_recv().is_err(),
            "nobody subscribed: not queued"
        );
        assert_eq!(pending.load(Ordering::SeqCst), 0);

        let clone = queue.clone();
        assert!(clone.send(&delivery("content.published")));
        assert_eq!(receiver.try_recv().unwrap().kind, "content.published");
        assert_eq!(pending.load(Ordering::SeqCst), 1);
    }
}
