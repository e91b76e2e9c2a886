//! The phone against the real client code paths: the client's own prekey
//! response parser, its libsignal session calls, its padding and its
//! plaintext decoder, with a second set of in-memory stores playing the
//! companion (what whatsapp-rust keeps in its persistence backend).

use wacore::iq::prekeys::{PreKeyFetchReason, PreKeyFetchSpec};
use wacore::iq::spec::IqSpec as _;
use wacore::messages::MessageUtils;
use wacore::pair::{DeviceState, PairUtils};
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, OwnedNodeRef, SERVER_JID};
use wacore_libsignal::protocol::{
    CiphertextMessage, CiphertextMessageType, GenericSignedPreKey as _, IdentityKeyPair, KeyPair,
    PreKeyBundle, PreKeyRecord, PreKeySignalMessage, ProtocolAddress, SignalMessage,
    SignedPreKeyRecord, Timestamp, UsePQRatchet, message_decrypt, message_encrypt,
    process_prekey_bundle,
};
use waproto::whatsapp as wa;

use super::ready::run_ready;
use super::*;

const PHONE_LID: &str = "100200300400500@lid";
const COMPANION_ADDR: &str = "15550001111:1@s.whatsapp.net";
/// The client names the phone by the jid it fetched the bundle for.
const PHONE_ADDR: &str = "100200300400500@lid";

/// A whatsapp-rust companion: its real freshly generated `Device` keys, and
/// libsignal stores holding them the way the client's backend does.
struct Companion {
    device: wacore::store::Device,
    stores: SignalStores,
}

impl Companion {
    fn new() -> Self {
        let device = wacore::store::Device::new();
        let identity = IdentityKeyPair::from(device.identity_key.clone());
        let mut stores = SignalStores::new(identity, device.registration_id);
        stores.signed_prekeys.insert(
            device.signed_pre_key_id.into(),
            SignedPreKeyRecord::new(
                device.signed_pre_key_id.into(),
                Timestamp::from_epoch_millis(0),
                &device.signed_pre_key,
                &device.signed_pre_key_signature,
            ),
        );
        Self { device, stores }
    }

    /// The bundle the server knows from the registration payload, plus one
    /// uploaded one-time prekey when `with_one_time_prekey`.
    fn bundle(&mut self, with_one_time_prekey: bool) -> CompanionBundle {
        let payload = self.device.get_client_payload();
        let mut bundle =
            CompanionBundle::from_pairing_data(payload.device_pairing_data.as_option().unwrap())
                .unwrap();
        if with_one_time_prekey {
            let key = KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>());
            self.stores
                .prekeys
                .insert(77u32.into(), PreKeyRecord::new(77u32.into(), &key));
            let public: [u8; 32] = key.public_key.public_key_bytes().try_into().unwrap();
            bundle.one_time_prekey = Some((77, public));
        }
        bundle
    }

    /// `wacore::send`'s calls: session from the fetched bundle, pad, encrypt.
    fn start_session(&mut self, peer: &str, bundle: &PreKeyBundle) {
        run_ready(process_prekey_bundle(
            &ProtocolAddress::new(peer, 0u32.into()),
            &mut self.stores.sessions,
            &mut self.stores.identity,
            bundle,
            &mut rand::make_rng::<rand::rngs::StdRng>(),
            UsePQRatchet::No,
        ))
        .unwrap()
        .unwrap();
    }

    fn encrypt(&mut self, peer: &str, message: &wa::Message) -> (&'static str, Vec<u8>) {
        let padded = MessageUtils::encode_and_pad(message);
        let envelope = run_ready(message_encrypt(
            &padded,
            &ProtocolAddress::new(peer, 0u32.into()),
            &mut self.stores.sessions,
            &mut self.stores.identity,
        ))
        .unwrap()
        .unwrap();
        let enc_type = match envelope.message_type() {
            CiphertextMessageType::PreKey => "pkmsg",
            CiphertextMessageType::Whisper => "msg",
            other => panic!("unexpected envelope {other:?}"),
        };
        (enc_type, envelope.serialize().to_vec())
    }

    /// The client's receive path: parse by enc type, `message_decrypt`, then the
    /// same unpad + decode `handle_decrypted_plaintext` runs.
    fn decrypt(&mut self, peer: &str, encrypted: &EncryptedMessage) -> wa::Message {
        let envelope = match encrypted.enc_type.as_wire_str() {
            "pkmsg" => CiphertextMessage::PreKeySignalMessage(
                PreKeySignalMessage::try_from(&encrypted.ciphertext[..]).unwrap(),
            ),
            _ => CiphertextMessage::SignalMessage(
                SignalMessage::try_from(&encrypted.ciphertext[..]).unwrap(),
            ),
        };
        let stores = &mut self.stores;
        let decrypted = run_ready(message_decrypt(
            &envelope,
            &ProtocolAddress::new(peer, 0u32.into()),
            &mut stores.sessions,
            &mut stores.identity,
            &mut stores.prekeys,
            &stores.signed_prekeys,
            &mut rand::make_rng::<rand::rngs::StdRng>(),
            UsePQRatchet::No,
        ))
        .unwrap()
        .unwrap();
        let (message, _history) = wacore::messages::decode_plaintext_detached_history_sync(
            decrypted.plaintext,
            encrypted.version,
        )
        .unwrap();
        message
    }
}

/// What the bytes look like after the server marshals them and the client reads them.
fn over_the_wire(node: &Node) -> OwnedNodeRef {
    let bytes = wacore_binary::marshal(node).unwrap();
    let unpacked = wacore_binary::util::unpack_bytes(bytes::BytesMut::from(&bytes[..])).unwrap();
    OwnedNodeRef::new(unpacked).unwrap()
}

/// The server's reply to a client prekey fetch for `jid`, parsed by the client's own IqSpec.
fn fetch_bundle_as_client(
    phone: &mut PhoneDevice,
    jid: &str,
    device_identity: Option<Vec<u8>>,
) -> Option<PreKeyBundle> {
    let requested: Jid = jid.parse().unwrap();
    let spec = PreKeyFetchSpec::with_reason(vec![requested.clone()], PreKeyFetchReason::Identity);
    let user = phone.bundle_user_node(jid, device_identity).unwrap();
    let reply = NodeBuilder::new("iq")
        .attr("from", SERVER_JID)
        .attr("type", "result")
        .attr("id", "k-1")
        .children([NodeBuilder::new("list").children([user]).build()])
        .build();
    let wire = over_the_wire(&reply);
    let mut outcome = spec.parse_response(wire.get()).unwrap();
    outcome.bundles.remove(&requested)
}

#[test]
fn bundle_node_echoes_the_requested_jid_verbatim() {
    let mut phone = PhoneDevice::generate(1).unwrap();
    for jid in [
        PHONE_LID,
        "15550001111@s.whatsapp.net",
        "15550001111:0@s.whatsapp.net",
    ] {
        let node = phone.bundle_user_node(jid, None).unwrap();
        assert_eq!(
            node.attrs.get("jid").map(|v| v.to_string()),
            Some(jid.to_string())
        );
    }
    assert!(matches!(
        phone.bundle_user_node("not a jid@", None),
        Err(PhoneError::BundleNode(_))
    ));
}

#[test]
fn client_message_to_phone_decrypts_as_pkmsg_then_msg() {
    let mut phone = PhoneDevice::generate(3).unwrap();
    let mut client = Companion::new();

    let bundle =
        fetch_bundle_as_client(&mut phone, PHONE_LID, None).expect("client accepts bundle");
    assert!(
        bundle.pre_key_id().unwrap().is_some(),
        "one-time prekey handed out"
    );
    client.start_session(PHONE_ADDR, &bundle);
    assert_eq!(phone.stored_prekey_count(), 3);

    let (enc_type, ciphertext) = client.encrypt(PHONE_ADDR, &text_message("hello phone"));
    assert_eq!(enc_type, "pkmsg");
    let received = phone
        .decrypt(COMPANION_ADDR, enc_type, &ciphertext, ENC_VERSION)
        .unwrap();
    assert_eq!(message_text(&received), Some("hello phone"));
    assert_eq!(
        phone.stored_prekey_count(),
        2,
        "consumed one-time prekey deleted"
    );

    // Until the phone answers, the client keeps sending pkmsg on the same session.
    let own_copy = wacore::messages::wrap_device_sent(
        text_message("copy for my phone"),
        "15559998888@s.whatsapp.net".into(),
    );
    let (enc_type, ciphertext) = client.encrypt(PHONE_ADDR, &own_copy);
    assert_eq!(enc_type, "pkmsg");
    let received = phone
        .decrypt(COMPANION_ADDR, enc_type, &ciphertext, ENC_VERSION)
        .unwrap();
    assert_eq!(message_text(&received), Some("copy for my phone"));

    // The phone answers on the session the client started: a plain msg.
    let reply = phone
        .encrypt(COMPANION_ADDR, None, &text_message("hi client"))
        .unwrap();
    assert_eq!(reply.enc_type, EncType::Message);
    assert_eq!(
        message_text(&client.decrypt(PHONE_ADDR, &reply)),
        Some("hi client")
    );

    // Having heard back, the client switches to msg.
    let (enc_type, ciphertext) = client.encrypt(PHONE_ADDR, &text_message("second"));
    assert_eq!(enc_type, "msg");
    let received = phone
        .decrypt(COMPANION_ADDR, enc_type, &ciphertext, ENC_VERSION)
        .unwrap();
    assert_eq!(message_text(&received), Some("second"));
}

#[test]
fn bad_ciphertext_is_an_error_and_leaves_the_session_usable() {
    let mut phone = PhoneDevice::generate(1).unwrap();
    let mut client = Companion::new();
    let bundle = fetch_bundle_as_client(&mut phone, PHONE_LID, None).unwrap();
    client.start_session(PHONE_ADDR, &bundle);
    let (enc_type, ciphertext) = client.encrypt(PHONE_ADDR, &text_message("intact"));

    for garbage in [&b""[..], b"\x33garbage", &[0u8; 64][..]] {
        for enc in ["pkmsg", "msg"] {
            assert!(
                phone
                    .decrypt(COMPANION_ADDR, enc, garbage, ENC_VERSION)
                    .is_err()
            );
        }
    }
    let mut flipped = ciphertext.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01; // inside the MAC
    assert!(
        phone
            .decrypt(COMPANION_ADDR, enc_type, &flipped, ENC_VERSION)
            .is_err()
    );
    assert!(matches!(
        phone.decrypt(COMPANION_ADDR, "skmsg", &ciphertext, ENC_VERSION),
        Err(PhoneError::UnsupportedEncType(_))
    ));

    let received = phone
        .decrypt(COMPANION_ADDR, enc_type, &ciphertext, ENC_VERSION)
        .unwrap();
    assert_eq!(message_text(&received), Some("intact"));
    // Replaying the same envelope is a duplicate, not a second message.
    assert!(
        phone
            .decrypt(COMPANION_ADDR, enc_type, &ciphertext, ENC_VERSION)
            .is_err()
    );
}

#[test]
fn bundle_without_one_time_prekeys_still_starts_a_session() {
    let mut phone = PhoneDevice::generate(0).unwrap();
    let mut client = Companion::new();
    let bundle = fetch_bundle_as_client(&mut phone, PHONE_LID, None).unwrap();
    assert_eq!(bundle.pre_key_id().unwrap(), None);
    client.start_session(PHONE_ADDR, &bundle);
    let (enc_type, ciphertext) = client.encrypt(PHONE_ADDR, &text_message("signed prekey only"));
    let received = phone
        .decrypt(COMPANION_ADDR, enc_type, &ciphertext, ENC_VERSION)
        .unwrap();
    assert_eq!(message_text(&received), Some("signed prekey only"));
}

#[test]
fn phone_message_to_client_and_key_share_decrypt_on_the_client() {
    for with_one_time_prekey in [false, true] {
        let mut phone = PhoneDevice::generate(0).unwrap();
        let mut client = Companion::new();
        let bundle = client.bundle(with_one_time_prekey);

        let keys = [AppStateSyncKey::generate(
            1,
            4242,
            vec![0, 1],
            1_700_000_000_000,
        )];
        let share = phone
            .encrypt(
                COMPANION_ADDR,
                Some(&bundle),
                &app_state_key_share_message(&keys),
            )
            .unwrap();
        assert_eq!(share.enc_type, EncType::PreKey);
        assert_eq!(share.version, 2);
        let envelope = PreKeySignalMessage::try_from(&share.ciphertext[..]).unwrap();
        let expected_prekey = with_one_time_prekey.then(|| 77u32.into());
        assert_eq!(
            envelope.pre_key_id(),
            expected_prekey,
            "bundle's one-time prekey used"
        );
        let received = client.decrypt(PHONE_ADDR, &share);
        assert_eq!(shared_app_state_keys(&received).as_deref(), Some(&keys[..]));

        // Same session (the bundle is ignored now); still pkmsg until the client answers.
        let text = phone
            .encrypt(
                COMPANION_ADDR,
                Some(&bundle),
                &text_message("from a contact"),
            )
            .unwrap();
        assert_eq!(text.enc_type, EncType::PreKey);
        assert_eq!(
            message_text(&client.decrypt(PHONE_ADDR, &text)),
            Some("from a contact")
        );

        let (enc_type, ciphertext) = client.encrypt(PHONE_ADDR, &text_message("ack"));
        assert_eq!(enc_type, "msg");
        let received = phone
            .decrypt(COMPANION_ADDR, enc_type, &ciphertext, ENC_VERSION)
            .unwrap();
        assert_eq!(message_text(&received), Some("ack"));

        let later = phone
            .encrypt(COMPANION_ADDR, None, &text_message("later"))
            .unwrap();
        assert_eq!(later.enc_type, EncType::Message);
        assert_eq!(
            message_text(&client.decrypt(PHONE_ADDR, &later)),
            Some("later")
        );
    }
}

#[test]
fn re_paired_companion_gets_a_fresh_session() {
    let mut phone = PhoneDevice::generate(0).unwrap();
    let mut old_client = Companion::new();
    let first = phone
        .encrypt(
            COMPANION_ADDR,
            Some(&old_client.bundle(false)),
            &text_message("old"),
        )
        .unwrap();
    assert_eq!(
        message_text(&old_client.decrypt(PHONE_ADDR, &first)),
        Some("old")
    );
    assert!(phone.has_session(COMPANION_ADDR));

    // Same device JID, new keys: the phone must not keep encrypting to the old identity.
    let mut new_client = Companion::new();
    let second = phone
        .encrypt(
            COMPANION_ADDR,
            Some(&new_client.bundle(false)),
            &text_message("new"),
        )
        .unwrap();
    assert_eq!(second.enc_type, EncType::PreKey);
    assert_eq!(
        message_text(&new_client.decrypt(PHONE_ADDR, &second)),
        Some("new")
    );

    assert!(phone.forget_session(COMPANION_ADDR));
    assert!(!phone.has_session(COMPANION_ADDR));
    assert!(matches!(
        phone.encrypt(COMPANION_ADDR, None, &text_message("x")),
        Err(PhoneError::NoSession(_))
    ));
}

#[test]
fn simulated_companion_device_bundle_passes_the_clients_adv_check() {
    // The phone account (device 0) links a second simulated device (device 2).
    let account = PhoneDevice::generate(0).unwrap();
    let mut linked = PhoneDevice::generate(1).unwrap();
    let state = DeviceState {
        identity_key: KeyPair::from(linked.identity_key_pair().clone()),
        noise_key: KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>()),
        adv_secret_key: [5u8; 32],
    };
    let details = AdvDeviceDetails {
        raw_id: 1,
        key_index: 2,
        timestamp: 1_700_000_000,
    };
    let container = pair_success_device_identity(
        account.identity_key_pair(),
        &linked.identity_public(),
        &state.adv_secret_key,
        &details,
    )
    .unwrap();
    let (signed, _) = PairUtils::do_pair_crypto(&state, &container).unwrap();

    let jid = "15550001111:2@s.whatsapp.net";
    assert!(fetch_bundle_as_client(&mut linked, jid, Some(signed.clone())).is_some());

    // A device identity vouching for some other key makes the client drop the bundle.
    let mut stranger = PhoneDevice::generate(1).unwrap();
    assert!(fetch_bundle_as_client(&mut stranger, jid, Some(signed)).is_none());
}

#[test]
fn crossing_first_messages_still_converge() {
    // Right after pairing the phone's key share (phone-initiated session) and the
    // client's first copy to its own phone (client-initiated session) can cross.
    let mut phone = PhoneDevice::generate(2).unwrap();
    let mut client = Companion::new();
    let companion_bundle = client.bundle(true);
    let share = phone
        .encrypt(
            COMPANION_ADDR,
            Some(&companion_bundle),
            &app_state_key_share_message(&[AppStateSyncKey::generate(1, 1, vec![0, 1], 0)]),
        )
        .unwrap();
    let phone_bundle = fetch_bundle_as_client(&mut phone, PHONE_LID, None).unwrap();
    client.start_session(PHONE_ADDR, &phone_bundle);
    let (enc_type, ciphertext) = client.encrypt(PHONE_ADDR, &text_message("crossed"));
    assert_eq!(enc_type, "pkmsg");

    assert!(shared_app_state_keys(&client.decrypt(PHONE_ADDR, &share)).is_some());
    let received = phone
        .decrypt(COMPANION_ADDR, enc_type, &ciphertext, ENC_VERSION)
        .unwrap();
    assert_eq!(message_text(&received), Some("crossed"));

    for round in 0..3 {
        let text = format!("phone {round}");
        let sent = phone
            .encrypt(
                COMPANION_ADDR,
                Some(&companion_bundle),
                &text_message(&text),
            )
            .unwrap();
        assert_eq!(
            message_text(&client.decrypt(PHONE_ADDR, &sent)),
            Some(text.as_str())
        );
        let text = format!("client {round}");
        let (enc_type, ciphertext) = client.encrypt(PHONE_ADDR, &text_message(&text));
        let received = phone
            .decrypt(COMPANION_ADDR, enc_type, &ciphertext, ENC_VERSION)
            .unwrap();
        assert_eq!(message_text(&received), Some(text.as_str()));
    }
}
