//! [`LocalBus`]: in-process topics over `tokio::sync::broadcast` (the default).

use std::sync::Arc;

use async_trait::async_trait;

use super::{BusError, BusEvent, Delivery, EventBus, Fanout, Subscription};

/// In-process bus: publishers and subscribers share this process.
#[derive(Debug, Default, Clone)]
pub struct LocalBus {
    fanout: Arc<Fanout>,
}

impl LocalBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl EventBus for LocalBus {
    async fn publish(&self, topic: &str, event: &BusEvent) -> Result<(), BusError> {
        self.fanout
            .deliver(topic, Some(Arc::new(Delivery::new(event.clone()))));
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> Result<Subscription, BusError> {
        let rx = self.fanout.receiver(topic);
        let fanout = self.fanout.clone();
        Ok(Subscription::new(
            topic,
            rx,
            Arc::new(move |topic| {
                fanout.release(topic);
            }),
        ))
    }
}
