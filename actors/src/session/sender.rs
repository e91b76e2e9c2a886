//! A session's outbox pipeline: a task beside the session actor that sends what its user
//! queued, while the session is connected. Sends never wait in the actor's mailbox, so
//! client events (receipts, disconnects) are handled while a batch is on its way.
//!
//! One pass claims a batch of the oldest queued messages in one statement, which also stores
//! each one's WhatsApp id before anything is sent (a retry after a crash reuses it). The batch
//! goes out one chat after another within a chat, chats at once, so messages to one recipient
//! keep their order; a message is `sent` once WhatsApp's server acknowledged it (`acks`: a
//! write without an ack is sent again, under the same id); the outcomes are recorded in one
//! statement per kind. The next pass starts when this one is recorded, so order holds across
//! batches too. Wake-ups coalesce: however
//! many requests arrive while a pass runs, one more pass follows.
//!
//! Pacing (`crate::pacing`): each pass asks the session's [`Pacer`] when the oldest queued
//! messages may go, claims only those already due and, in the same statement, stores the
//! plan for the rest as their `not_before`. Then the task sleeps until the next is due (or a
//! new message, a reconnect or a test's clock wakes it): no timer runs while nothing is
//! queued, and pacing costs no statement of its own per message. The pacer is rebuilt from
//! the database when the session starts, and again when the claim shows that the account's
//! pacing settings changed. WhatsApp answering a send with rate-overlimit (429) puts the
//! message back in the queue, without counting the attempt, and the pacer waits and slows
//! down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::{Notify, watch};
use uuid::Uuid;
use whatsapp_rust::send::{SendError, SendOptions};
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{Client, ClientError, IqError, Jid};

use super::Writer;
use super::acks::{AckOutcome, ServerAcks};
use crate::error::SessionError;
use crate::outbox::{self, Claimed, MessageStatus};
use crate::pacing::{self, Pacer, PacingSettings, clock};

/// A message that could not be sent this many times is given up on, so one poisonous
/// message cannot hold up the queue forever.
const MAX_ATTEMPTS: i32 = 5;

/// Upper bound for one send (device lookup, encryption, the stanza write).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a written message waits for the server's ack before it is sent again (under
/// the same id).
const ACK_TIMEOUT: Duration = Duration::from_secs(20);

/// Messages claimed per pass.
const BATCH: usize = 128;

/// Chats sent to at once within a pass.
const CHATS_AT_ONCE: usize = 32;

/// How long a pass that found the connection gone waits before trying again (the next
/// `connected` wakes it sooner).
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// The running pipeline; dropping it stops the task (what it had claimed stays `sending`,
/// and is sent again, with the same ids, by whoever runs the session next).
pub struct Sender {
    wake: Arc<Notify>,
    connected: watch::Sender<bool>,
    task: tokio::task::AbortHandle,
}

impl Sender {
    pub fn start(
        writer: Writer,
        client: Arc<Client>,
        acks: Arc<ServerAcks>,
        pacing: Arc<PacingSettings>,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let (connected, watch_connected) = watch::channel(false);
        let link = Link { client, acks };
        let task =
            tokio::spawn(run(writer, link, wake.clone(), watch_connected, pacing)).abort_handle();
        Self {
            wake,
            connected,
            task,
        }
    }

    /// The outbox may hold something new.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Sends go out only while the session is logged in and past its initial sync.
    pub fn set_connected(&self, connected: bool) {
        self.connected.send_replace(connected);
        if connected {
            self.wake();
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a pass ended.
enum Pass {
    /// Nothing (more) is queued.
    Drained,
    /// A batch went out; there may be more, due now.
    More,
    /// What is queued is not due before this (pacing, or WhatsApp asked to slow down).
    Held(DateTime<Utc>),
    /// The account's pacing settings changed: rebuild the pacer, then go on.
    PacingChanged,
    /// The connection went away under the batch: what did not go out is queued again.
    Interrupted,
}

/// The session's pacer and the settings version it was built from.
struct Paced {
    pacer: Pacer,
    /// `updated_at` of the account's own settings (`None`: the node's defaults).
    settings_version: Option<DateTime<Utc>>,
}

/// The session's client and the acks its sends wait for.
struct Link {
    client: Arc<Client>,
    acks: Arc<ServerAcks>,
}

async fn run(
    writer: Writer,
    link: Link,
    wake: Arc<Notify>,
    mut connected: watch::Receiver<bool>,
    defaults: Arc<PacingSettings>,
) {
    // Subscribed once, so a move of a test's clock is seen even if it happens mid-pass.
    let mut clock_moves = clock::watch(writer.user_id);
    let mut paced: Option<Paced> = None;
    loop {
        if connected.wait_for(|connected| *connected).await.is_err() {
            return;
        }
        let current = match paced.as_mut() {
            Some(current) => current,
            None => {
                match pacing::store::load_pacer(&writer.pool, writer.user_id, &defaults).await {
                    Ok((pacer, settings_version)) => paced.insert(Paced {
                        pacer,
                        settings_version,
                    }),
                    Err(error) => {
                        tracing::warn!(user_id = %writer.user_id, %error, "cannot load pacing; retrying");
                        tokio::time::sleep(RETRY_AFTER).await;
                        continue;
                    }
                }
            }
        };
        match pass(&writer, &link, current).await {
            Ok(Pass::Drained) => wake.notified().await,
            Ok(Pass::More) => {}
            Ok(Pass::Held(until)) => {
                let wait = (until - clock::now(writer.user_id))
                    .to_std()
                    .unwrap_or_default();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wake.notified() => {}
                    _ = clock_moves.moved() => {}
                    _ = connected.changed() => {}
                }
            }
            Ok(Pass::PacingChanged) => paced = None,
            Ok(Pass::Interrupted) => {
                let _ = tokio::time::timeout(RETRY_AFTER, connected.changed()).await;
            }
            // The fence watcher stops the session; nothing more may be written.
            Err(SessionError::LeaseLost) => return,
            Err(error) => {
                tracing::warn!(user_id = %writer.user_id, %error, "outbox pass failed; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// What became of one message of a batch.
enum Outcome {
    Sent,
    /// Not connected after all: back to the queue.
    Retry,
    /// WhatsApp answered rate-overlimit (with the wait it asked for, if it did): back to
    /// the queue, and the session slows down.
    RateLimited(Option<Duration>),
    /// Queued behind a `Retry` in its chat: not tried, so that the chat keeps its order.
    NotTried,
    Failed(String),
}

async fn pass(writer: &Writer, link: &Link, paced: &mut Paced) -> Result<Pass, SessionError> {
    let now = clock::now(writer.user_id);
    let plan = paced.pacer.plan(now, BATCH);
    let due = plan.iter().take_while(|at| **at <= now).count();
    let ids: Vec<String> = (0..due)
        .map(|_| link.client.generate_message_id())
        .collect();
    let batch = outbox::claim_batch(
        &writer.pool,
        &writer.fence,
        writer.user_id,
        BATCH,
        &ids,
        &plan[due..],
    )
    .await?;
    for held in &batch.held {
        writer.publish_scheduled(held.id, held.at, held.not_before);
    }
    let settings_changed = batch
        .pacing_updated_at
        .is_some_and(|version| version != paced.settings_version);
    if batch.claimed.is_empty() {
        return Ok(if settings_changed {
            Pass::PacingChanged
        } else if due == 0 {
            Pass::Held(plan[0])
        } else {
            Pass::Drained
        });
    }
    if settings_changed {
        // Claimed under the old settings: back to the queue, untried, to be planned under
        // the new ones (one statement, on a change only).
        let ids: Vec<Uuid> = batch.claimed.iter().map(|job| job.id).collect();
        outbox::requeue(&writer.pool, &writer.fence, &ids, false, None).await?;
        return Ok(Pass::PacingChanged);
    }
    let claimed = batch.claimed.len();
    for job in &batch.claimed {
        writer.publish(job.id, MessageStatus::Sending, job.at, None);
    }
    let outcomes: Vec<(Uuid, Outcome)> = futures_util::stream::iter(chats(batch.claimed))
        .map(|chat| send_chat(link, chat))
        .buffer_unordered(CHATS_AT_ONCE)
        .flat_map(futures_util::stream::iter)
        .collect()
        .await;
    // Test builds only: a test may stop the pipeline dead here, between the sends and their
    // record, to show what a crash at this point leaves behind.
    #[cfg(feature = "simulator")]
    crate::crash_point::after_send(writer.user_id).await;
    let pass = record(writer, &mut paced.pacer, outcomes).await?;
    Ok(match pass {
        // Fewer rows than were due: the queue is empty (what arrives meanwhile wakes the
        // task again).
        Pass::More if claimed < due => Pass::Drained,
        Pass::More => {
            let now = clock::now(writer.user_id);
            let next = paced.pacer.next_due(now);
            if next <= now {
                Pass::More
            } else {
                Pass::Held(next)
            }
        }
        other => other,
    })
}

/// The batch by recipient, each chat in queue order.
fn chats(batch: Vec<Claimed>) -> Vec<Vec<Claimed>> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut chats: Vec<Vec<Claimed>> = Vec::new();
    for job in batch {
        match index.get(&job.recipient) {
            Some(&chat) => chats[chat].push(job),
            None => {
                index.insert(job.recipient.clone(), chats.len());
                chats.push(vec![job]);
            }
        }
    }
    chats
}

/// Sends one chat's messages in order; once one must wait for the connection, so do the
/// ones after it.
async fn send_chat(link: &Link, chat: Vec<Claimed>) -> Vec<(Uuid, Outcome)> {
    let mut outcomes = Vec::with_capacity(chat.len());
    let mut interrupted = false;
    for job in chat {
        let outcome = if interrupted {
            Outcome::NotTried
        } else {
            send_one(link, &job).await
        };
        interrupted |= matches!(outcome, Outcome::Retry | Outcome::RateLimited(_));
        outcomes.push((job.id, outcome));
    }
    outcomes
}

async fn send_one(link: &Link, job: &Claimed) -> Outcome {
    if job.attempts > MAX_ATTEMPTS {
        return Outcome::Failed(format!("gave up after {MAX_ATTEMPTS} attempts"));
    }
    let Some(recipient) = recipient_jid(&job.recipient) else {
        return Outcome::Failed("invalid recipient: a phone number is digits only".into());
    };
    // The claim stored an id; a row without one (impossible by the claim) is not sent
    // under an id nobody recorded.
    let Some(wa_message_id) = job.wa_message_id.clone() else {
        return Outcome::Failed("no WhatsApp message id was recorded before sending".into());
    };
    let message = wa::Message {
        conversation: Some(job.body.clone()),
        ..Default::default()
    };
    let ack = link.acks.expect(&wa_message_id);
    let options = SendOptions::default().with_message_id(wa_message_id);
    let sent = tokio::time::timeout(
        SEND_TIMEOUT,
        link.client
            .send_message_with_options(recipient, message, options),
    )
    .await;
    match sent {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return classify(&error),
        Err(_) => return Outcome::Retry,
    }
    match ack.wait(ACK_TIMEOUT).await {
        AckOutcome::Acked => Outcome::Sent,
        // Written, but whether WhatsApp has it is unknown: again, under the same id.
        AckOutcome::Unknown => Outcome::Retry,
        AckOutcome::Refused(code) if code == "429" => Outcome::RateLimited(None),
        AckOutcome::Refused(code) => {
            Outcome::Failed(format!("WhatsApp refused the message (error {code})"))
        }
    }
}

/// Records a batch's outcomes, one statement per kind, and announces them; tells the pacer
/// what went out and what WhatsApp refused.
async fn record(
    writer: &Writer,
    pacer: &mut Pacer,
    outcomes: Vec<(Uuid, Outcome)>,
) -> Result<Pass, SessionError> {
    let mut sent = Vec::new();
    let mut retry = Vec::new();
    let mut refused = Vec::new();
    let mut not_tried = Vec::new();
    let mut failed = Vec::new();
    let mut asked_backoff: Option<Duration> = None;
    for (id, outcome) in outcomes {
        match outcome {
            Outcome::Sent => sent.push(id),
            Outcome::Retry => retry.push(id),
            Outcome::RateLimited(backoff) => {
                refused.push(id);
                asked_backoff = asked_backoff.max(backoff);
            }
            Outcome::NotTried => not_tried.push(id),
            Outcome::Failed(reason) => failed.push((id, reason)),
        }
    }
    let now = clock::now(writer.user_id);
    let resume_at = (!refused.is_empty()).then(|| {
        let until = pacer.rate_limited(now, asked_backoff);
        tracing::warn!(
            user_id = %writer.user_id,
            refused = refused.len(),
            %until,
            "WhatsApp answered rate-overlimit; slowing down"
        );
        until
    });
    let (pool, fence) = (&writer.pool, &writer.fence);
    if !sent.is_empty() {
        writer.publish_moved(&outbox::mark_sent(pool, fence, &sent).await?, None);
        // The next gap counts from when these were sent and recorded.
        let recorded = clock::now(writer.user_id);
        for _ in &sent {
            pacer.record_sent(recorded);
        }
    }
    if !failed.is_empty() {
        let reasons: HashMap<Uuid, &str> = failed
            .iter()
            .map(|(id, reason)| (*id, reason.as_str()))
            .collect();
        for moved in outbox::mark_failed(pool, fence, &failed).await? {
            let reason = reasons.get(&moved.id).map(|r| r.to_string());
            writer.publish(moved.id, moved.status, moved.at, reason);
        }
    }
    if !retry.is_empty() {
        writer.publish_moved(
            &outbox::requeue(pool, fence, &retry, true, None).await?,
            None,
        );
    }
    // A refusal is WhatsApp's pacing, not the message's fault: its attempt is given back.
    let mut back = refused;
    back.extend(not_tried);
    if !back.is_empty() {
        let moved = outbox::requeue(pool, fence, &back, false, resume_at).await?;
        for message in &moved {
            writer.publish_scheduled(message.id, message.at, resume_at);
        }
    }
    Ok(if !retry.is_empty() {
        Pass::Interrupted
    } else if resume_at.is_some() {
        Pass::Held(pacer.next_due(now))
    } else {
        Pass::More
    })
}

/// `<digits>@s.whatsapp.net`, or `None` for anything that is not a phone number.
fn recipient_jid(recipient: &str) -> Option<Jid> {
    let digits = !recipient.is_empty()
        && recipient.len() <= 20
        && recipient.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| Jid::pn(recipient))
}

fn classify(error: &SendError) -> Outcome {
    if let Some(backoff) = rate_overlimit(error) {
        return Outcome::RateLimited(backoff);
    }
    match error {
        SendError::NotLoggedIn
        | SendError::Client(ClientError::NotConnected | ClientError::NotLoggedIn) => Outcome::Retry,
        other => {
            let text = format!("{other:#}");
            if text.contains("406") {
                Outcome::Failed(format!(
                    "recipient is not on WhatsApp (server answered 406): {text}"
                ))
            } else {
                Outcome::Failed(format!("send failed: {text}"))
            }
        }
    }
}

/// Whether WhatsApp refused the send as over its rate: an IQ of the send (the device list,
/// the recipient's keys) answered `<error code="429" text="rate-overlimit" backoff="…"/>`.
/// `Some(backoff)` if so, with the wait the server asked for, if it named one.
fn rate_overlimit(error: &SendError) -> Option<Option<Duration>> {
    let from_iq = |iq: &IqError| match iq {
        IqError::ServerError {
            code: 429, backoff, ..
        } => Some(backoff.map(|seconds| Duration::from_secs(u64::from(seconds)))),
        _ => None,
    };
    let typed = match error {
        SendError::Iq(iq) | SendError::Client(ClientError::Iq(iq)) => from_iq(iq),
        _ => None,
    };
    if typed.is_some() {
        return typed;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(found) = current.downcast_ref::<IqError>().and_then(from_iq) {
            return Some(found);
        }
        source = current.source();
    }
    let text = format!("{error:#}");
    (text.contains("code=429") || text.contains("rate-overlimit")).then_some(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(recipient: &str) -> Claimed {
        Claimed {
            id: Uuid::new_v4(),
            recipient: recipient.into(),
            body: String::new(),
            wa_message_id: None,
            attempts: 1,
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_batch_splits_into_chats_that_keep_queue_order() {
        let batch = vec![job("1"), job("2"), job("1"), job("3"), job("2"), job("1")];
        let order: Vec<Uuid> = batch.iter().map(|job| job.id).collect();
        let chats = chats(batch);
        let ids = |chat: &Vec<Claimed>| chat.iter().map(|job| job.id).collect::<Vec<_>>();
        assert_eq!(chats.len(), 3);
        assert_eq!(ids(&chats[0]), vec![order[0], order[2], order[5]]);
        assert_eq!(ids(&chats[1]), vec![order[1], order[4]]);
        assert_eq!(ids(&chats[2]), vec![order[3]]);
    }
}
