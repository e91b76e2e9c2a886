//! The outbox: sending, receipts, failures, idempotency, a crash between a send and its record.

use std::time::Duration;

use botwave_actors::crash_point;
use botwave_actors::outbox::{self, MessageSource, MessageStatus, NewMessage};
use botwave_wa_sim::ReceiptMode;

use crate::support::{Events, Harness, WAIT, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_message_is_sent_then_delivered_then_read() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    h.pair(user, "15550003001").await;
    h.sim.create_phone("15550004001", 1).unwrap();
    let mut events = Events::new(&h.hub, user);

    let message = h.enqueue(user, "15550004001", "hello from botwave").await;
    h.manager.notify_queued(user);

    assert_eq!(
        events
            .message_status(message.id, MessageStatus::Sending)
            .await,
        None
    );
    events.message_status(message.id, MessageStatus::Sent).await;
    events
        .message_status(message.id, MessageStatus::Delivered)
        .await;
    events.message_status(message.id, MessageStatus::Read).await;

    let row = h.message(user, message.id).await;
    assert_eq!(row.status, MessageStatus::Read);
    assert_eq!(row.attempts, 1);
    assert_eq!(row.error, None);
    let (sent, delivered, read) = (
        row.sent_at.unwrap(),
        row.delivered_at.unwrap(),
        row.read_at.unwrap(),
    );
    assert!(delivered <= read, "{delivered} <= {read}");
    assert!(sent <= read);
    let received = h.sim.messages("15550004001");
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].text, "hello from botwave");
    assert_eq!(received[0].from, "15550003001");
    assert_eq!(Some(&received[0].id), row.wa_message_id.as_ref());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_before_connecting_go_out_on_connect() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    h.sim.create_phone("15550004002", 1).unwrap();
    let mut events = Events::new(&h.hub, user);
    h.manager.initialize(user).await.unwrap();
    let qr = events.qr().await;
    let message = h.enqueue(user, "15550004002", "waited for the QR").await;
    h.manager.notify_queued(user);

    h.sim.scan("15550003002", &qr).await.unwrap();
    events.message_status(message.id, MessageStatus::Sent).await;
    let received = eventually("the text at the phone", || async {
        h.sim.messages("15550004002").into_iter().next()
    })
    .await;
    assert_eq!(received.text, "waited for the QR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_not_on_whatsapp_fails_clearly_and_the_session_keeps_sending() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    h.pair(user, "15550003003").await;
    h.sim.create_phone("15550004003", 1).unwrap();
    let mut events = Events::new(&h.hub, user);

    let nobody = h.enqueue(user, "19998887777", "anyone?").await;
    let garbage = h.enqueue(user, "12ab; DROP TABLE", "bad recipient").await;
    let good = h.enqueue(user, "15550004003", "still works").await;
    h.manager.notify_queued(user);

    let error = events
        .message_status(nobody.id, MessageStatus::Failed)
        .await
        .unwrap();
    assert!(error.contains("not on WhatsApp"), "{error}");
    let error = events
        .message_status(garbage.id, MessageStatus::Failed)
        .await
        .unwrap();
    assert!(error.contains("invalid recipient"), "{error}");
    events.message_status(good.id, MessageStatus::Sent).await;

    let row = h.message(user, nobody.id).await;
    assert_eq!(row.status, MessageStatus::Failed);
    assert!(row.failed_at.is_some());
    assert!(row.error.unwrap().contains("not on WhatsApp"));
    assert_eq!(
        h.status(user).await.restart_count,
        0,
        "no crash on bad input"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_returns_the_first_message() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    let new = |body: &str| NewMessage {
        user_id: user,
        recipient: "15550004004".into(),
        body: body.into(),
        source: MessageSource::Web,
        api_key_id: None,
        idempotency_key: Some("key-1".into()),
    };
    let (first, created) = outbox::enqueue(&h.db.pool, new("one")).await.unwrap();
    assert!(created);
    let (again, created) = outbox::enqueue(&h.db.pool, new("two")).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, first.id);
    assert_eq!(again.body, "one");
    assert_eq!(again.source, MessageSource::Web);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_several_chats_at_once_keep_their_order_in_each_chat() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    h.pair(user, "15550003010").await;
    let chats = ["15550004010", "15550004011", "15550004012"];
    for chat in chats {
        h.sim.create_phone(chat, 1).unwrap();
    }
    // Interleaved, as many users' API calls arrive: one chat's messages are not adjacent in
    // the queue, and all of them are queued before the session looks.
    const PER_CHAT: usize = 12;
    let mut queued = Vec::new();
    for n in 0..PER_CHAT {
        for chat in chats {
            queued.push(h.enqueue(user, chat, &format!("{chat} #{n:02}")).await);
        }
    }
    h.manager.notify_queued(user);

    for chat in chats {
        let received = eventually("every message at its chat", || async {
            let received = h.sim.messages(chat);
            (received.len() >= PER_CHAT).then_some(received)
        })
        .await;
        let texts: Vec<String> = received.iter().map(|m| m.text.clone()).collect();
        let expected: Vec<String> = (0..PER_CHAT).map(|n| format!("{chat} #{n:02}")).collect();
        assert_eq!(texts, expected, "in queue order, each once");
    }
    for message in queued {
        let row = eventually("sent", || async {
            let row = h.message(user, message.id).await;
            (row.status != MessageStatus::Queued && row.status != MessageStatus::Sending)
                .then_some(row)
        })
        .await;
        assert_ne!(row.status, MessageStatus::Failed, "{:?}", row.error);
        assert_eq!(row.attempts, 1);
    }
}

/// A session that dies between a send and its `sent` record leaves the message `sending`,
/// its WhatsApp id stored. The restarted session sends it again under that id, which the
/// recipient's phone shows once (counting a duplicate) and answers with receipts, so the log
/// ends `read`, after two attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_cut_off_before_its_sent_record_goes_again_under_its_id_and_is_shown_once() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    h.pair(user, "15550003020").await;
    let phone = "15550004020";
    h.sim.create_phone(phone, 1).unwrap();
    let mut events = Events::new(&h.hub, user);

    // The phone answers nothing until the session is dead, so only its answer to the repeat
    // can move the message on.
    h.sim.set_receipt_mode(ReceiptMode::Manual);
    let stopped = crash_point::stop_after_send(user);
    let message = h.enqueue(user, phone, "exactly once").await;
    h.manager.notify_queued(user);
    tokio::time::timeout(WAIT, stopped)
        .await
        .expect("the pipeline reaches the crash point")
        .expect("the crash point reports");

    let cut_off = h.message(user, message.id).await;
    assert_eq!(cut_off.status, MessageStatus::Sending, "no `sent` recorded");
    assert_eq!(cut_off.attempts, 1);
    let wa_id = cut_off
        .wa_message_id
        .expect("the id is stored before sending");
    let first = eventually("the first copy at the phone", || async {
        h.sim.messages(phone).into_iter().next()
    })
    .await;
    assert_eq!(first.id, wa_id);

    h.sim.set_receipt_mode(ReceiptMode::default());
    assert!(h.manager.crash_for_test(user).await.unwrap());
    events.message_status(message.id, MessageStatus::Read).await;

    let row = h.message(user, message.id).await;
    assert_eq!(row.status, MessageStatus::Read);
    assert!(row.delivered_at.is_some());
    assert_eq!(row.attempts, 2);
    assert_eq!(row.wa_message_id.as_deref(), Some(wa_id.as_str()));
    let received = h.sim.messages(phone);
    assert_eq!(received.len(), 1, "shown once: {received:?}");
    assert_eq!(received[0].text, "exactly once");
    assert_eq!(h.sim.duplicates(phone), 1, "the repeat reached the phone");
    let stats = h.sim.stats();
    assert_eq!(stats.duplicate_messages, 1);
    assert_eq!(stats.decrypt_failures, 0);
    assert_eq!(h.status(user).await.restart_count, 1);
}

/// WhatsApp's ack of a written message gets lost (as when the connection breaks between the
/// two): the message is not `sent` on the write alone. After the ack's wait it goes again
/// under the same id; the phone shows it once, and the log moves on only with WhatsApp's
/// answers to the repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_ack_is_lost_is_not_sent_until_a_repeat_is_acked() {
    let h = Harness::start().await;
    let user = h.create_user().await;
    let own = "15550003030";
    h.pair(user, own).await;
    let phone = "15550004030";
    h.sim.create_phone(phone, 1).unwrap();
    let mut events = Events::new(&h.hub, user);

    h.sim.set_receipt_mode(ReceiptMode::Manual);
    assert_eq!(h.sim.set_lost_acks(own, 1).remaining, 1);
    let message = h.enqueue(user, phone, "acked at last").await;
    h.manager.notify_queued(user);
    let first = eventually("the first copy at the phone", || async {
        h.sim.messages(phone).into_iter().next()
    })
    .await;
    // The server has it, but the sender never heard so.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = h.message(user, message.id).await;
    assert_eq!(
        waiting.status,
        MessageStatus::Sending,
        "not sent without an ack"
    );
    assert_eq!(waiting.wa_message_id.as_deref(), Some(first.id.as_str()));

    events.message_status(message.id, MessageStatus::Sent).await;
    let sent = h.message(user, message.id).await;
    assert_eq!(sent.attempts, 2, "sent again after the ack's wait");
    assert_eq!(sent.wa_message_id.as_deref(), Some(first.id.as_str()));
    assert_eq!(h.sim.messages(phone).len(), 1, "shown once");
    assert_eq!(h.sim.duplicates(phone), 1, "the repeat reached the phone");
    assert_eq!(h.sim.set_lost_acks(own, 0).lost, 1);
    h.sim.set_receipt_mode(ReceiptMode::default());
}
