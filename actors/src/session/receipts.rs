//! Delivery and read receipts, applied in batches by a task of their own: the client hands
//! them over as they arrive (they never wait in the session's mailbox), and the task applies
//! whatever has piled up since its last statement in one statement per kind.

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use whatsapp_rust::types::events::Receipt as ReceiptEvent;
use whatsapp_rust::types::presence::ReceiptType;

use super::Writer;
use crate::error::SessionError;
use crate::outbox::{self, Receipt};

/// Receipts waiting to be applied; beyond this the client waits (it reads no faster than
/// they are applied).
const QUEUE: usize = 4096;

/// The most receipts one statement applies.
const BATCH: usize = 1024;

/// One WhatsApp message id a receipt is about.
struct Acknowledged {
    kind: Receipt,
    wa_message_id: String,
    at: DateTime<Utc>,
}

/// Where the client hands receipts over. Cheap to clone.
#[derive(Clone)]
pub struct ReceiptSink(mpsc::Sender<Acknowledged>);

impl ReceiptSink {
    /// Takes a receipt event; answers `false` for receipt types that say nothing about
    /// delivery (played, sender copies, …), which are ignored.
    pub async fn offer(&self, receipt: &ReceiptEvent) -> bool {
        let kind = match receipt.r#type {
            ReceiptType::Delivered => Receipt::Delivered,
            ReceiptType::Read => Receipt::Read,
            _ => return false,
        };
        // WhatsApp stamps receipts in whole seconds; when the receipt reached us is as true
        // and precise enough to measure delivery times in milliseconds. Receipts that waited
        // offline carry their real time.
        let at = if receipt.offline {
            receipt.timestamp
        } else {
            Utc::now()
        };
        for id in &receipt.message_ids {
            let acknowledged = Acknowledged {
                kind,
                wa_message_id: id.to_string(),
                at,
            };
            // Closed: the session is stopping, and whoever runs it next starts afresh.
            if self.0.send(acknowledged).await.is_err() {
                break;
            }
        }
        true
    }
}

/// The running task; dropping it stops the task.
pub struct Receipts {
    task: tokio::task::AbortHandle,
}

impl Receipts {
    pub fn start(writer: Writer) -> (Self, ReceiptSink) {
        let (sink, queue) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(writer, queue)).abort_handle();
        (Self { task }, ReceiptSink(sink))
    }
}

impl Drop for Receipts {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(writer: Writer, mut queue: mpsc::Receiver<Acknowledged>) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        match apply(&writer, &batch).await {
            Ok(()) => {}
            // The fence watcher stops the session; nothing more may be written.
            Err(SessionError::LeaseLost) => return,
            // The statuses stay behind; the messages themselves are safe.
            Err(error) => {
                tracing::warn!(user_id = %writer.user_id, %error, count = batch.len(), "cannot apply receipts")
            }
        }
        batch.clear();
    }
}

/// Deliveries first: a read receipt in the same batch then moves the message on.
async fn apply(writer: &Writer, batch: &[Acknowledged]) -> Result<(), SessionError> {
    for kind in [Receipt::Delivered, Receipt::Read] {
        let receipts: Vec<(String, DateTime<Utc>)> = batch
            .iter()
            .filter(|acknowledged| acknowledged.kind == kind)
            .map(|acknowledged| (acknowledged.wa_message_id.clone(), acknowledged.at))
            .collect();
        if receipts.is_empty() {
            continue;
        }
        let moved =
            outbox::apply_receipts(&writer.pool, &writer.fence, writer.user_id, kind, &receipts)
                .await?;
        writer.publish_moved(&moved, None);
    }
    Ok(())
}
