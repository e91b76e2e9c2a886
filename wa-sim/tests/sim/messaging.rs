//! Client → phone texts (decrypted by the phone, a repeated id shown once), receipts back,
//! phone → client texts, and sending to a number that is not on WhatsApp.

use botwave_wa_sim::{PhoneInfo, ReceiptKind, ReceiptMode, SimConfig};
use whatsapp_rust::send::SendOptions;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::types::presence::ReceiptType;
use whatsapp_rust::waproto::whatsapp as wa;

use botwave_wa_sim::KickKind;

use crate::common::{AckGate, eventually, paired_client, paired_gated_client, pn, start_sim};

/// libsignal's rule, which the client follows: `pkmsg` until the peer has sent
/// something back on the session, `msg` afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_are_decrypted_by_the_phone_as_pkmsg_until_it_answers_then_as_msg() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, "15551110000").await;
    sim.create_phone("15552220000", 1).unwrap();

    let first = client
        .client
        .send_text(pn("15552220000"), "hello phone")
        .await
        .expect("first send");
    let second = client
        .client
        .send_text(pn("15552220000"), "second one")
        .await
        .expect("second send");
    let received = eventually("both texts decrypted", || {
        let messages = sim.messages("15552220000");
        (messages.len() >= 2).then_some(messages)
    })
    .await;
    assert_eq!(received[0].id, first.message_id);
    assert_eq!(received[0].text, "hello phone");
    assert_eq!(received[0].enc_type, "pkmsg");
    assert_eq!(received[0].from, "15551110000");
    assert_eq!(received[1].id, second.message_id);
    assert_eq!(received[1].text, "second one");
    assert_eq!(
        received[1].enc_type, "pkmsg",
        "the phone has not answered yet"
    );

    sim.send_text("15552220000", "15551110000", "got it")
        .unwrap();
    client.events.wait_text("got it").await;
    let third = client
        .client
        .send_text(pn("15552220000"), "third")
        .await
        .expect("third send");
    let received = eventually("the third text", || {
        sim.messages("15552220000")
            .into_iter()
            .find(|m| m.id == third.message_id)
    })
    .await;
    assert_eq!(received.text, "third");
    assert_eq!(received.enc_type, "msg", "an answered session uses msg");
    assert_eq!(sim.stats().decrypt_failures, 0);
}

/// WhatsApp answers a usync `<lid/>` query with the number's LID; a client then keys its
/// Signal sessions and key fetches under the LID while the stanza stays PN-addressed (the
/// account is not LID-migrated). The phone must still decrypt, receipts must still find
/// the message, and the phone's answer (from its PN) must decrypt on the LID session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_learned_the_lid_still_reaches_the_phone_both_ways() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, "15551110009").await;
    sim.create_phone("15552220009", 2).unwrap();
    let lid = sim.lid("15552220009").expect("the phone has a LID");

    let sent = client
        .client
        .send_text(pn("15552220009"), "by lid")
        .await
        .expect("send");
    let mapping = client
        .client
        .get_lid_pn_entry(&pn("15552220009"))
        .await
        .expect("mapping lookup")
        .expect("the client learned the LID from usync");
    assert_eq!(&*mapping.lid, lid.as_str());
    let received = eventually("both devices decrypted", || {
        let messages = sim.messages("15552220009");
        (messages.len() >= 2).then_some(messages)
    })
    .await;
    let mut addressed: Vec<String> = received.iter().map(|m| m.addressed_to.clone()).collect();
    addressed.sort();
    assert_eq!(
        addressed,
        vec!["15552220009:1@s.whatsapp.net", "15552220009@s.whatsapp.net"],
        "the wire stays PN-addressed"
    );
    assert!(
        received
            .iter()
            .all(|m| m.text == "by lid" && m.from == "15551110009")
    );

    let delivered = client
        .events
        .wait("the delivery receipt", |e| match e {
            Event::Receipt(receipt) if receipt.r#type == ReceiptType::Delivered => Some(
                receipt
                    .message_ids
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .await;
    assert_eq!(delivered, vec![sent.message_id.clone()]);

    sim.send_text("15552220009", "15551110009", "answer")
        .unwrap();
    client.events.wait_text("answer").await;
    assert_eq!(sim.stats().decrypt_failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_of_a_two_device_phone_decrypts_the_text() {
    let sim = start_sim(SimConfig::default()).await;
    let client = paired_client(&sim, "15551110001").await;
    sim.create_phone("15552220001", 2).unwrap();
    let sent = client
        .client
        .send_text(pn("15552220001"), "to both")
        .await
        .expect("send");
    let received = eventually("two devices decrypted", || {
        let messages = sim.messages("15552220001");
        (messages.len() >= 2).then_some(messages)
    })
    .await;
    let mut devices: Vec<u16> = received.iter().map(|m| m.device).collect();
    devices.sort();
    assert_eq!(devices, vec![0, 1]);
    assert!(
        received
            .iter()
            .all(|m| m.id == sent.message_id && m.text == "to both")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_to_a_number_not_on_whatsapp_fails() {
    let sim = start_sim(SimConfig::default()).await;
    let client = paired_client(&sim, "15551110002").await;
    let error = client
        .client
        .send_text(pn("19998887777"), "anyone?")
        .await
        .expect_err("a number without WhatsApp cannot be messaged");
    let text = format!("{error:#}");
    assert!(text.contains("406"), "error names the server's 406: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_and_read_receipts_reach_the_sender() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, "15551110003").await;
    sim.create_phone("15552220003", 1).unwrap();
    let sent = client
        .client
        .send_text(pn("15552220003"), "receipt me")
        .await
        .expect("send");
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let (ids, kind, chat) = client
            .events
            .wait("a receipt", |e| match e {
                Event::Receipt(receipt) => Some((
                    receipt.message_ids.clone(),
                    receipt.r#type.clone(),
                    receipt.source.chat.user.to_string(),
                )),
                _ => None,
            })
            .await;
        assert_eq!(
            ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            vec![sent.message_id.clone()]
        );
        assert_eq!(chat, "15552220003");
        kinds.push(kind);
    }
    assert_eq!(kinds, vec![ReceiptType::Delivered, ReceiptType::Read]);

    // Manual mode: nothing automatic, receipts on command only.
    sim.set_receipt_mode(ReceiptMode::Manual);
    let manual = client
        .client
        .send_text(pn("15552220003"), "manual")
        .await
        .expect("send");
    eventually("manual text decrypted", || {
        sim.messages("15552220003")
            .iter()
            .any(|m| m.id == manual.message_id)
            .then_some(())
    })
    .await;
    sim.send_receipt("15552220003", &manual.message_id, ReceiptKind::Read)
        .expect("receipt on command");
    let (ids, kind) = client
        .events
        .wait("the commanded receipt", |e| match e {
            Event::Receipt(receipt) => Some((receipt.message_ids.clone(), receipt.r#type.clone())),
            _ => None,
        })
        .await;
    assert_eq!(
        ids.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        vec![manual.message_id.clone()]
    );
    assert_eq!(kind, ReceiptType::Read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_text_reaches_the_client_as_a_message_event() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, "15551110004").await;
    let sent = sim
        .send_text("15552220004", "15551110004", "hi from the phone")
        .expect("phone sends");
    assert_eq!(sent.delivered.len(), 1);
    let (id, text, sender) = client
        .events
        .wait("the inbound message", |e| match e {
            Event::Messages(batch) => batch.iter().find_map(|m| {
                m.message.conversation.clone().map(|text| {
                    (
                        m.info.id.to_string(),
                        text,
                        m.info.source.sender.user.to_string(),
                    )
                })
            }),
            _ => None,
        })
        .await;
    assert_eq!(id, sent.id);
    assert_eq!(text, "hi from the phone");
    assert_eq!(sender, "15552220004");

    // A second text rides the same session.
    sim.send_text("15552220004", "15551110004", "again")
        .unwrap();
    let text = client
        .events
        .wait("the second inbound message", |e| match e {
            Event::Messages(batch) => batch.iter().find_map(|m| m.message.conversation.clone()),
            _ => None,
        })
        .await;
    assert_eq!(text, "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_latency_delays_what_the_server_sends() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, "15551110005").await;
    sim.create_phone("15552220005", 1).unwrap();
    sim.set_latency(std::time::Duration::from_millis(400));
    let started = std::time::Instant::now();
    client
        .client
        .send_text(pn("15552220005"), "slow")
        .await
        .expect("send");
    client
        .events
        .wait("the delivery receipt", |e| match e {
            Event::Receipt(receipt) if receipt.r#type == ReceiptType::Delivered => Some(()),
            _ => None,
        })
        .await;
    let elapsed = started.elapsed();
    // The usync and key-fetch replies, the ack and the receipt each wait 400 ms.
    assert!(
        elapsed >= std::time::Duration::from_millis(800),
        "latency was not applied: {elapsed:?}"
    );
}

/// Clients send receipts for what phones send them, and WhatsApp routes each receipt to the
/// message's sender: `peer_msg` for what the own phone synced (the app-state key share and
/// the initial history), a delivery receipt for another phone's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_a_client_sends_reach_the_phone_that_sent_the_message() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, "15551110011").await;
    let device = "15551110011:1@s.whatsapp.net";
    let peer = eventually("peer_msg receipts for the own phone's syncs", || {
        let receipts: Vec<_> = sim
            .receipts("15551110011")
            .into_iter()
            .filter(|r| r.kind == "peer_msg")
            .collect();
        (receipts.len() >= 2).then_some(receipts)
    })
    .await;
    assert!(peer.iter().all(|r| r.from_device == device), "{peer:?}");

    let sent = sim
        .send_text("15552220011", "15551110011", "did you get it?")
        .unwrap();
    client.events.wait_text("did you get it?").await;
    let delivered = eventually("the delivery receipt at the sending phone", || {
        sim.receipts("15552220011")
            .into_iter()
            .find(|r| r.id == sent.id)
    })
    .await;
    // The client learned its push name from the phone's app state and, as WhatsApp Web
    // does then, said it is available, so it acknowledges delivery with a plain receipt
    // (a client that never said so writes `inactive`).
    assert_eq!(delivered.kind, "delivered");
    assert_eq!(delivered.from_device, device);
    assert!(
        sim.receipts("15551110011").iter().all(|r| r.id != sent.id),
        "a receipt reaches only the sender"
    );
}

/// WhatsApp keys a chat's messages by sender and id: a client that sends again under an id
/// it used (a retry after a crash) sends the same message. The phone shows it once, counts a
/// duplicate, and still answers it with receipts, so a sender that never heard back about
/// the first copy sees it delivered and read. Another sender's message under the same id is
/// a message of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_id_a_sender_repeats_is_shown_once_counted_and_still_answered() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, "15551110012").await;
    let phone = "15552220012";
    sim.create_phone(phone, 1).unwrap();

    // Nothing answers the first copy, as if its sender had died before hearing back.
    sim.set_receipt_mode(ReceiptMode::Manual);
    let first = client
        .client
        .send_text(pn(phone), "only once")
        .await
        .expect("first send");
    eventually("the first copy at the phone", || {
        (sim.messages(phone).len() == 1).then_some(())
    })
    .await;

    sim.set_receipt_mode(ReceiptMode::default());
    let repeat = client
        .client
        .send_message_with_options(
            pn(phone),
            wa::Message {
                conversation: Some("only once".into()),
                ..Default::default()
            },
            SendOptions::default().with_message_id(first.message_id.clone()),
        )
        .await
        .expect("the repeat");
    assert_eq!(repeat.message_id, first.message_id);
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let (ids, kind) = client
            .events
            .wait("the receipts for the repeat", |e| match e {
                Event::Receipt(receipt) => Some((
                    receipt
                        .message_ids
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>(),
                    receipt.r#type.clone(),
                )),
                _ => None,
            })
            .await;
        assert_eq!(ids, vec![first.message_id.clone()]);
        kinds.push(kind);
    }
    assert_eq!(kinds, vec![ReceiptType::Delivered, ReceiptType::Read]);

    let received = sim.messages(phone);
    assert_eq!(received.len(), 1, "shown once: {received:?}");
    assert_eq!(
        (received[0].id.as_str(), received[0].text.as_str()),
        (first.message_id.as_str(), "only once")
    );
    assert_eq!(sim.duplicates(phone), 1);
    let stats = sim.stats();
    assert_eq!(stats.duplicate_messages, 1);
    assert_eq!(stats.messages_decrypted_by_recipients, 1);
    assert_eq!(stats.decrypt_failures, 0);
    // Each send also made a copy for the sender's own phone; neither is a received text.
    eventually("both own-device copies decrypted", || {
        (sim.stats().own_device_copies_decrypted == 2).then_some(())
    })
    .await;
    assert!(sim.messages("15551110012").is_empty());

    // The same id from someone else is another message.
    let other = paired_client(&sim, "15551110013").await;
    other
        .client
        .send_message_with_options(
            pn(phone),
            wa::Message {
                conversation: Some("mine".into()),
                ..Default::default()
            },
            SendOptions::default().with_message_id(first.message_id.clone()),
        )
        .await
        .expect("another sender");
    let received = eventually("the other sender's text", || {
        let received = sim.messages(phone);
        (received.len() == 2).then_some(received)
    })
    .await;
    assert_eq!(received[1].from, "15551110013");
    assert_eq!(received[1].text, "mine");

    // The phone's `duplicates` in the control API.
    let phones: Vec<PhoneInfo> = reqwest::get(format!("{}/phones", sim.control_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let info = phones.iter().find(|p| p.number == phone).expect("listed");
    assert_eq!(info.duplicates, 1);
    assert_eq!(sim.stats().duplicate_messages, 1);
}

/// WhatsApp keeps a message for a device until the device acknowledges it: a client that
/// could not store it (its durability hook refused, so it sent no receipt) gets it again at
/// its next login, and once it acknowledges it the phone sees it delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_client_did_not_acknowledge_is_sent_again_at_its_next_login() {
    let sim = start_sim(SimConfig::default()).await;
    let gate = AckGate::closed();
    let mut client = paired_gated_client(&sim, "15551110020", gate.clone()).await;
    let sent = sim
        .send_text("15552220020", "15551110020", "keep me")
        .expect("phone sends");
    assert_eq!(sent.delivered.len(), 1);
    eventually("the client to refuse the message", || {
        (gate.refused() >= 1).then_some(())
    })
    .await;
    assert_eq!(sim.unacked("15551110020", 1), 1, "WhatsApp still holds it");
    assert!(
        !sim.receipts("15552220020").iter().any(|r| r.id == sent.id),
        "no receipt for a message the client did not keep"
    );

    gate.open();
    sim.kick("15551110020", 1, KickKind::Drop);
    let id = client
        .events
        .wait("the message again, after the reconnect", |e| match e {
            Event::Messages(batch) => batch.iter().find_map(|m| {
                (m.message.conversation.as_deref() == Some("keep me")).then(|| m.info.id.clone())
            }),
            _ => None,
        })
        .await;
    assert_eq!(id, sent.id, "redelivered under its own id");
    eventually("the phone to see it delivered", || {
        sim.receipts("15552220020")
            .iter()
            .any(|r| r.id == sent.id && (r.kind == "delivered" || r.kind == "inactive"))
            .then_some(())
    })
    .await;
    eventually("WhatsApp to drop it from the queue", || {
        (sim.unacked("15551110020", 1) == 0).then_some(())
    })
    .await;
}

/// An acknowledged message is not sent again: after a reconnect the next text is the only
/// new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_message_is_not_sent_again_after_a_reconnect() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, "15551110021").await;
    sim.send_text("15552220021", "15551110021", "once").unwrap();
    client.events.wait_text("once").await;
    eventually("the client's receipt", || {
        (sim.unacked("15551110021", 1) == 0).then_some(())
    })
    .await;
    sim.kick("15551110021", 1, KickKind::Drop);
    client.connected().await;
    sim.send_text("15552220021", "15551110021", "after the reconnect")
        .unwrap();
    let texts = client
        .events
        .wait("the text after the reconnect", |e| match e {
            Event::Messages(batch) => {
                let texts: Vec<String> = batch
                    .iter()
                    .filter_map(|m| m.message.conversation.clone())
                    .collect();
                (!texts.is_empty()).then_some(texts)
            }
            _ => None,
        })
        .await;
    assert_eq!(
        texts,
        ["after the reconnect"],
        "the acknowledged text came again"
    );
}

/// A phone sends one of its messages again (as for a retry receipt): the same id and
/// content, encrypted anew, which the client decrypts like any message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_can_send_a_message_again_under_its_id() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, "15551110022").await;
    let sent = sim
        .send_text("15552220022", "15551110022", "twice")
        .unwrap();
    client.events.wait_text("twice").await;
    let again = sim.resend("15552220022", &sent.id).expect("resends");
    assert_eq!(again.id, sent.id);
    let id = client
        .events
        .wait("the second copy", |e| match e {
            Event::Messages(batch) => batch.iter().find_map(|m| {
                (m.message.conversation.as_deref() == Some("twice")).then(|| m.info.id.clone())
            }),
            _ => None,
        })
        .await;
    assert_eq!(id, sent.id);
    assert!(matches!(
        sim.resend("15552220022", "3A0000000000000000"),
        Err(botwave_wa_sim::DeliveryError::UnknownMessage(..))
    ));
}

/// Phones send photos and locations as WhatsApp's own `imageMessage` and
/// `locationMessage`, in `type="media"` stanzas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_sends_a_photo_and_a_location() {
    let sim = start_sim(SimConfig::default()).await;
    let mut client = paired_client(&sim, "15551110023").await;
    sim.send_message(
        "15552220023",
        "15551110023",
        botwave_wa_sim::phone::image_message(Some("the view")),
    )
    .unwrap();
    let image = client
        .events
        .wait("the photo", |e| match e {
            Event::Messages(batch) => batch
                .iter()
                .find_map(|m| m.message.image_message.as_option().cloned()),
            _ => None,
        })
        .await;
    assert_eq!(image.caption.as_deref(), Some("the view"));
    assert_eq!(image.mimetype.as_deref(), Some("image/jpeg"));
    assert_eq!(image.media_key.as_ref().map(Vec::len), Some(32));
    sim.send_message(
        "15552220023",
        "15551110023",
        botwave_wa_sim::phone::location_message(52.37, 4.89, Some("Dam Square")),
    )
    .unwrap();
    let location = client
        .events
        .wait("the location", |e| match e {
            Event::Messages(batch) => batch
                .iter()
                .find_map(|m| m.message.location_message.as_option().cloned()),
            _ => None,
        })
        .await;
    assert_eq!(location.degrees_latitude, Some(52.37));
    assert_eq!(location.name.as_deref(), Some("Dam Square"));
}
