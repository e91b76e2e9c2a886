//! The delivery worker: one per node. It claims due deliveries from PostgreSQL (so any number
//! of nodes share the work, each delivery attempted by one of them at a time), POSTs each on
//! its own task within the node's and the endpoint's share of concurrency, and settles it:
//! delivered, due again after a backoff (or the receiver's `Retry-After`), or dead. It wakes
//! on the `botwave_webhooks` notification the event triggers send, on a finished attempt, and
//! on a timer as the fallback.

use std::{collections::HashMap, sync::Arc, time::Duration};

use botwave_actors::{EventHub, SessionEvent, supervisor::backoff::restart_delay};
use tokio::{sync::Notify, task::JoinSet};
use tokio_postgres::{AsyncMessage, NoTls};
use uuid::Uuid;

use super::{
    client::{Delivery, DeliveryClient, Outcome},
    store::{self, Claimed, EndpointAfter, Settle},
};
use crate::{config::WebhookSettings, db::DbPool, metrics::WebhookOutcome};

pub const CHANNEL: &str = "botwave_webhooks";
/// How often a node deletes delivered events past their retention (every node may; the
/// DELETE is idempotent).
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How often a node trims backlogs beyond `webhooks.max_backlog` (see
/// [`store::trim_backlogs`]): a backlog may pass the bound by what arrives in this time.
const TRIM_EVERY: Duration = Duration::from_secs(5);

pub struct Worker {
    pub pool: DbPool,
    pub database_url: String,
    /// This node's incarnation: the owner of the locks it takes.
    pub node: Uuid,
    pub settings: WebhookSettings,
    pub client: DeliveryClient,
    pub events: EventHub,
    pub metrics: crate::metrics::WebhookMetrics,
}

impl Worker {
    /// Runs until `stopping` turns true; then gives its locks back.
    pub async fn run(self, mut stopping: tokio::sync::watch::Receiver<bool>) {
        let wake = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(self.database_url.clone(), wake.clone()));
        let this = Arc::new(self);
        let mut running: JoinSet<Uuid> = JoinSet::new();
        let mut in_flight: HashMap<Uuid, i64> = HashMap::new();
        let poll = Duration::from_millis(this.settings.poll_interval_ms);
        let mut idle_wait = poll;
        let mut pruned_at = tokio::time::Instant::now();
        let mut trimmed_at = tokio::time::Instant::now();
        loop {
            if *stopping.borrow() {
                break;
            }
            if pruned_at.elapsed() >= PRUNE_EVERY {
                pruned_at = tokio::time::Instant::now();
                if let Err(error) = store::prune_delivered(&this.pool).await {
                    tracing::warn!(%error, "cannot delete old webhook deliveries");
                }
            }
            if trimmed_at.elapsed() >= TRIM_EVERY {
                trimmed_at = tokio::time::Instant::now();
                match store::trim_backlogs(&this.pool, this.settings.max_backlog as i64).await {
                    Ok(0) => {}
                    Ok(dropped) => {
                        tracing::warn!(dropped, "webhook backlogs full: oldest events dropped")
                    }
                    Err(error) => tracing::warn!(%error, "cannot trim webhook backlogs"),
                }
            }
            let free = this.settings.concurrency.saturating_sub(running.len());
            if free > 0 {
                match this.claim(free, &in_flight).await {
                    Ok(claimed) => {
                        idle_wait = poll;
                        for delivery in claimed {
                            *in_flight.entry(delivery.endpoint_id).or_default() += 1;
                            let worker = this.clone();
                            running.spawn(async move {
                                let endpoint = delivery.endpoint_id;
                                worker.attempt(delivery).await;
                                endpoint
                            });
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot claim webhook deliveries");
                        idle_wait = (idle_wait * 2).min(Duration::from_secs(10));
                    }
                }
            }
            tokio::select! {
                Some(done) = running.join_next(), if !running.is_empty() => {
                    finished(&mut in_flight, done);
                    while let Some(done) = running.try_join_next() {
                        finished(&mut in_flight, done);
                    }
                }
                _ = wake.notified() => {}
                _ = tokio::time::sleep(idle_wait) => {}
                _ = stopping.changed() => {}
            }
        }
        listener.abort();
        running.shutdown().await;
        if let Err(error) = store::release(&this.pool, this.node).await {
            tracing::warn!(%error, "cannot release webhook deliveries; their locks expire");
        }
    }

    async fn claim(
        &self,
        free: usize,
        in_flight: &HashMap<Uuid, i64>,
    ) -> Result<Vec<Claimed>, crate::db::DbError> {
        let busy: Vec<(Uuid, i64)> = in_flight.iter().map(|(id, n)| (*id, *n)).collect();
        // A lock outlives the longest attempt, so a delivery in flight is never taken twice;
        // one held by a node that died is free again after this long.
        let lock = Duration::from_millis(
            self.settings.connect_timeout_ms + self.settings.request_timeout_ms,
        ) + Duration::from_secs(5);
        store::claim(
            &self.pool,
            self.node,
            free as i64,
            self.settings.concurrency_per_endpoint as i64,
            &busy,
            lock.as_secs_f64(),
        )
        .await
    }

    async fn attempt(&self, claimed: Claimed) {
        let event_id = claimed.event_id.to_string();
        let outcome = self
            .client
            .send(&Delivery {
                url: &claimed.url,
                secret: &claimed.secret,
                previous_secret: claimed.previous_secret.as_deref(),
                event_id: &event_id,
                event_type: &claimed.event_type,
                body: &claimed.body,
            })
            .await;
        let settle = self.decide(&claimed, &outcome);
        let counted = match settle {
            Settle::Delivered => WebhookOutcome::Delivered,
            Settle::Retry { .. } => WebhookOutcome::Retry,
            Settle::Dead => WebhookOutcome::Dead,
        };
        self.metrics
            .attempted(counted, claimed.waited + outcome.latency);
        tracing::debug!(
            endpoint = %claimed.endpoint_id,
            event = %claimed.event_id,
            attempt = claimed.attempts,
            status = ?outcome.status,
            error = ?outcome.error,
            ?settle,
            "webhook attempt"
        );
        let latency_ms = i32::try_from(outcome.latency.as_millis()).unwrap_or(i32::MAX);
        let settled = store::settle(
            &self.pool,
            self.node,
            &claimed,
            settle,
            outcome.status.map(i32::from),
            latency_ms,
            outcome.error.as_deref(),
            i32::try_from(self.settings.pause_after_failures).unwrap_or(i32::MAX),
        )
        .await;
        match settled {
            Ok(EndpointAfter::JustPaused) => {
                tracing::info!(endpoint = %claimed.endpoint_id, "webhook endpoint paused");
                self.events.publish(SessionEvent::WebhookPaused {
                    user_id: claimed.user_id,
                    endpoint_id: claimed.endpoint_id,
                    reason: outcome.error.clone().unwrap_or_default(),
                });
            }
            Ok(EndpointAfter::Fine) => {}
            // The lock runs out and the delivery is attempted again: at least once.
            Err(error) => tracing::warn!(%error, "cannot record a webhook attempt"),
        }
    }

    fn decide(&self, claimed: &Claimed, outcome: &Outcome) -> Settle {
        if outcome.succeeded() {
            return Settle::Delivered;
        }
        if !outcome.retryable || claimed.attempts >= self.settings.max_attempts as i32 {
            return Settle::Dead;
        }
        let max = Duration::from_secs(self.settings.retry_max_secs);
        let wait = match outcome.retry_after {
            Some(asked) => asked.min(max),
            // Jittered, so receivers that failed together are not all retried together.
            None => restart_delay(
                claimed.attempts.max(1) as u32,
                Duration::from_millis(self.settings.retry_base_ms),
                max,
            ),
        };
        Settle::Retry {
            retry_in: wait.as_secs_f64(),
        }
    }
}

fn finished(in_flight: &mut HashMap<Uuid, i64>, done: Result<Uuid, tokio::task::JoinError>) {
    if let Ok(endpoint) = done
        && let Some(count) = in_flight.get_mut(&endpoint)
    {
        *count -= 1;
        if *count <= 0 {
            in_flight.remove(&endpoint);
        }
    }
    // A task that panicked leaves its count: the endpoint just gets one slot fewer on this
    // node until it restarts, and the delivery is retried when its lock runs out.
}

/// Wakes the worker whenever an event is written, on any node; reconnects with a pause when
/// its connection fails (the timer keeps deliveries going meanwhile).
async fn listen(database_url: String, wake: Arc<Notify>) {
    let Ok(config) = database_url.parse::<tokio_postgres::Config>() else {
        return;
    };
    loop {
        if let Ok((client, mut connection)) = config.connect(NoTls).await {
            let statement = format!("LISTEN {CHANNEL}");
            let listen = client.batch_execute(&statement);
            tokio::pin!(listen);
            let mut listening = false;
            loop {
                tokio::select! {
                    done = &mut listen, if !listening => {
                        if done.is_err() {
                            break;
                        }
                        listening = true;
                        wake.notify_one();
                    }
                    message = std::future::poll_fn(|cx| connection.poll_message(cx)) => match message {
                        Some(Ok(AsyncMessage::Notification(_))) => wake.notify_one(),
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    },
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
