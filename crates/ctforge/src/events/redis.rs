//! [`RedisBus`]: topics over Redis pub/sub, so the web process sees events that a separate
//! `ctforge worker` process emits.
//!
//! One pub/sub connection per bus instance multiplexes every topic and fans messages out to
//! local subscribers; a background task owns it, (un)subscribes on demand and reconnects with
//! back-off. After a reconnect every subscriber is told it lagged and re-reads the store.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::{BusError, BusEvent, Delivery, EventBus, Fanout, Subscription};

/// How long `subscribe` waits for Redis to confirm.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

enum Control {
    /// Make sure the topic is subscribed in Redis, then answer.
    Ensure(String, oneshot::Sender<()>),
    /// A local subscription ended; unsubscribe if it was the last.
    Release(String),
}

/// Redis pub/sub bus. Channels are named `<prefix><topic>`.
#[derive(Clone)]
pub struct RedisBus {
    prefix: String,
    publisher: redis::aio::ConnectionManager,
    fanout: Arc<Fanout>,
    control: mpsc::UnboundedSender<Control>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// Connects to `url`; every channel name starts with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BusError> {
        let client = redis::Client::open(url).map_err(|e| BusError(e.to_string()))?;
        let publisher = redis::aio::ConnectionManager::new(client.clone())
            .await
            .map_err(|e| BusError(format!("cannot connect to Redis: {e}")))?;
        // Fail early if pub/sub connections cannot be opened either.
        let pubsub = client
            .get_async_pubsub()
            .await
            .map_err(|e| BusError(format!("cannot open a Redis pub/sub connection: {e}")))?;
        let fanout = Arc::new(Fanout::default());
        let (control, control_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(
            client,
            Some(pubsub),
            prefix.to_owned(),
            fanout.clone(),
            control_rx,
        ));
        Ok(Self {
            prefix: prefix.to_owned(),
            publisher,
            fanout,
            control,
        })
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, topic: &str, event: &BusEvent) -> Result<(), BusError> {
        let payload = serde_json::to_string(event).map_err(|e| BusError(e.to_string()))?;
        let mut conn = self.publisher.clone();
        redis::cmd("PUBLISH")
            .arg(format!("{}{topic}", self.prefix))
            .arg(payload)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|e| BusError(format!("Redis PUBLISH failed: {e}")))?;
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> Result<Subscription, BusError> {
        let rx = self.fanout.receiver(topic);
        let control = self.control.clone();
        let subscription = Subscription::new(
            topic,
            rx,
            Arc::new(move |topic| {
                let _ = control.send(Control::Release(topic.to_owned()));
            }),
        );
        let (ack, confirmed) = oneshot::channel();
        self.control
            .send(Control::Ensure(topic.to_owned(), ack))
            .map_err(|_| BusError("the Redis subscriber task stopped".to_owned()))?;
        match tokio::time::timeout(SUBSCRIBE_TIMEOUT, confirmed).await {
            Ok(Ok(())) => Ok(subscription),
            _ => Err(BusError(
                "Redis did not confirm the subscription; check CTFORGE_REDIS_URL".to_owned(),
            )),
        }
    }
}

/// Owns the pub/sub connection: delivers messages, applies (un)subscriptions, reconnects.
async fn run(
    client: redis::Client,
    mut first: Option<redis::aio::PubSub>,
    prefix: String,
    fanout: Arc<Fanout>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut reconnecting = false;
    loop {
        let pubsub = match first.take() {
            Some(p) => p,
            None => match client.get_async_pubsub().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "Redis pub/sub reconnect failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    if control.is_closed() {
                        return;
                    }
                    continue;
                }
            },
        };
        let (mut sink, mut stream) = pubsub.split();
        let mut subscribed = HashSet::new();
        let mut healthy = true;
        for topic in fanout.topics() {
            if sink.subscribe(format!("{prefix}{topic}")).await.is_err() {
                healthy = false;
                break;
            }
            subscribed.insert(topic);
        }
        if reconnecting {
            fanout.resync_all();
        }
        if healthy {
            backoff = Duration::from_millis(100);
        }
        while healthy {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => {
                        let Some(topic) = message.get_channel_name().strip_prefix(prefix.as_str()) else {
                            continue;
                        };
                        match serde_json::from_slice::<BusEvent>(message.get_payload_bytes()) {
                            Ok(event) => fanout.deliver(topic, Some(Arc::new(Delivery::new(event)))),
                            Err(e) => tracing::warn!(error = %e, topic, "undecodable bus message"),
                        }
                    }
                    None => healthy = false,
                },
                command = control.recv() => match command {
                    None => return,
                    Some(Control::Ensure(topic, ack)) => {
                        if !subscribed.contains(&topic) {
                            if sink.subscribe(format!("{prefix}{topic}")).await.is_err() {
                                healthy = false;
                                continue;
                            }
                            subscribed.insert(topic);
                        }
                        let _ = ack.send(());
                    }
                    Some(Control::Release(topic)) => {
                        if fanout.release(&topic) && subscribed.remove(&topic) {
                            let _ = sink.unsubscribe(format!("{prefix}{topic}")).await;
                        }
                    }
                },
            }
        }
        tracing::warn!("Redis pub/sub connection lost; reconnecting");
        reconnecting = true;
        tokio::time::sleep(backoff).await;
    }
}
