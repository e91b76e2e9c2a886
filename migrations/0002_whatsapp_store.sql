-- WhatsApp client state (whatsapp-rust's storage backend): the paired device, Signal
-- protocol state, app-state sync, and the protocol bookkeeping the client persists.
--
-- Every table is one namespace per botwave WhatsApp session: `session_id` leads every
-- primary key, so each session's rows sit together in the index and a session is
-- forgotten with one DELETE per table. The foreign key to wa_sessions arrives with that
-- table in a later migration.
--
-- Unsigned 32-bit protocol numbers (ids, registration id, versions) are stored as
-- bigint so no value needs a sign trick; the application checks the range on read.
-- Address and JID columns used for prefix range scans are COLLATE "C" so that the
-- comparison is bytewise whatever the database's default collation is.

-- Orders writes whose "latest" matters (app-state sync keys, LID mappings) independently
-- of caller-supplied timestamps.
CREATE SEQUENCE wa_store_write_seq;

-- The paired device itself: keys, identity, and connection bookkeeping.
CREATE TABLE wa_device (
    session_id                       uuid PRIMARY KEY,
    pn                               text,               -- own phone-number JID, NULL until paired
    lid                              text,               -- own LID JID
    registration_id                  bigint NOT NULL,
    noise_key                        bytea NOT NULL,     -- private (32) || public (32)
    identity_key                     bytea NOT NULL,     -- private (32) || public (32)
    signed_pre_key                   bytea NOT NULL,     -- private (32) || public (32)
    signed_pre_key_id                bigint NOT NULL,
    signed_pre_key_signature         bytea NOT NULL,
    adv_secret_key                   bytea NOT NULL,
    account                          bytea,              -- ADVSignedDeviceIdentity protobuf
    push_name                        text NOT NULL,
    app_version_primary              bigint NOT NULL,
    app_version_secondary            bigint NOT NULL,
    app_version_tertiary             bigint NOT NULL,
    app_version_last_fetched_ms      bigint NOT NULL,
    edge_routing_info                bytea,
    props_hash                       text,
    next_pre_key_id                  bigint NOT NULL,
    first_unupload_pre_key_id        bigint NOT NULL,
    server_has_prekeys               boolean NOT NULL,
    nct_salt                         bytea,
    -- Cached Noise server certificate chain: all six columns are set, or none.
    cert_intermediate_key            bytea,
    cert_intermediate_not_before     bigint,
    cert_intermediate_not_after      bigint,
    cert_leaf_key                    bytea,
    cert_leaf_not_before             bigint,
    cert_leaf_not_after              bigint,
    login_counter                    integer NOT NULL,
    lid_migrated                     boolean NOT NULL,
    last_signed_pre_key_rotation_ms  bigint NOT NULL,
    read_receipts_disabled           boolean NOT NULL,
    updated_at                       timestamptz NOT NULL DEFAULT now(),
    CHECK ((cert_intermediate_key IS NULL) = (cert_leaf_key IS NULL))
);

-- Signal: remote identity keys, by protocol address ("user[:device]@server").
CREATE TABLE wa_identities (
    session_id    uuid NOT NULL,
    address       text COLLATE "C" NOT NULL,
    identity_key  bytea NOT NULL CHECK (octet_length(identity_key) = 32),
    PRIMARY KEY (session_id, address)
);

-- Signal: session records, by protocol address.
CREATE TABLE wa_signal_sessions (
    session_id  uuid NOT NULL,
    address     text COLLATE "C" NOT NULL,
    record      bytea NOT NULL,
    PRIMARY KEY (session_id, address)
);

-- Signal: one-time pre-keys.
CREATE TABLE wa_prekeys (
    session_id  uuid NOT NULL,
    prekey_id   bigint NOT NULL,
    record      bytea NOT NULL,
    uploaded    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (session_id, prekey_id)
);

-- Signal: signed pre-keys.
CREATE TABLE wa_signed_prekeys (
    session_id        uuid NOT NULL,
    signed_prekey_id  bigint NOT NULL,
    record            bytea NOT NULL,
    PRIMARY KEY (session_id, signed_prekey_id)
);

-- Signal: group sender keys, by sender-key name ("group::sender").
CREATE TABLE wa_sender_keys (
    session_id  uuid NOT NULL,
    address     text NOT NULL,
    record      bytea NOT NULL,
    PRIMARY KEY (session_id, address)
);

-- App-state sync keys. write_seq marks the most recently stored key.
CREATE TABLE wa_app_state_sync_keys (
    session_id     uuid NOT NULL,
    key_id         bytea NOT NULL,
    key_data       bytea NOT NULL,
    fingerprint    bytea NOT NULL,
    key_timestamp  bigint NOT NULL,
    write_seq      bigint NOT NULL DEFAULT nextval('wa_store_write_seq'),
    PRIMARY KEY (session_id, key_id)
);
CREATE INDEX wa_app_state_sync_keys_latest_idx ON wa_app_state_sync_keys (session_id, write_seq DESC);

-- App-state collection versions (ltHash state). The index -> value MAC map is kept as
-- two parallel arrays.
CREATE TABLE wa_app_state_versions (
    session_id          uuid NOT NULL,
    collection          text NOT NULL,
    version             bigint NOT NULL,
    hash                bytea NOT NULL,
    index_macs          text[] NOT NULL,
    value_macs          bytea[] NOT NULL,
    mac_mismatch_fatal  boolean NOT NULL,
    PRIMARY KEY (session_id, collection),
    CHECK (cardinality(index_macs) = cardinality(value_macs))
);

-- App-state mutation MACs, by collection and index MAC.
CREATE TABLE wa_app_state_mutation_macs (
    session_id  uuid NOT NULL,
    collection  text NOT NULL,
    index_mac   bytea NOT NULL,
    value_mac   bytea NOT NULL,
    version     bigint NOT NULL,
    PRIMARY KEY (session_id, collection, index_mac)
);

-- Which group member devices hold our current sender key.
CREATE TABLE wa_sender_key_devices (
    session_id  uuid NOT NULL,
    group_jid   text NOT NULL,
    device_jid  text NOT NULL,
    has_key     boolean NOT NULL,
    PRIMARY KEY (session_id, group_jid, device_jid)
);
CREATE INDEX wa_sender_key_devices_device_idx ON wa_sender_key_devices (session_id, device_jid);

-- LID <-> phone number mappings. A phone resolves to its most recently updated LID.
CREATE TABLE wa_lid_pn_mappings (
    session_id       uuid NOT NULL,
    lid              text NOT NULL,
    phone_number     text NOT NULL,
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL,
    learning_source  text NOT NULL,
    write_seq        bigint NOT NULL DEFAULT nextval('wa_store_write_seq'),
    PRIMARY KEY (session_id, lid)
);
CREATE INDEX wa_lid_pn_mappings_phone_idx
    ON wa_lid_pn_mappings (session_id, phone_number, updated_at DESC, write_seq DESC);

-- Base keys saved during retry handling, to detect a peer resending with the same session.
CREATE TABLE wa_base_keys (
    session_id  uuid NOT NULL,
    address     text NOT NULL,
    message_id  text NOT NULL,
    base_key    bytea NOT NULL,
    PRIMARY KEY (session_id, address, message_id)
);

-- Known devices per user (usync device lists). `devices` is the JSON list of
-- DeviceInfo, which evolves with serde defaults.
CREATE TABLE wa_device_lists (
    session_id      uuid NOT NULL,
    user_id         text NOT NULL,
    devices         jsonb NOT NULL,
    list_timestamp  bigint NOT NULL,
    phash           text,
    raw_id          bigint,
    PRIMARY KEY (session_id, user_id)
);

-- Serialized group metadata snapshots, opaque to the database.
CREATE TABLE wa_group_metadata (
    session_id  uuid NOT NULL,
    group_jid   text NOT NULL,
    blob        bytea NOT NULL,
    PRIMARY KEY (session_id, group_jid)
);

-- Trusted-contact privacy tokens. An empty token is a placeholder that only carries
-- sender_timestamp.
CREATE TABLE wa_tc_tokens (
    session_id        uuid NOT NULL,
    jid               text NOT NULL,
    token             bytea NOT NULL,
    token_timestamp   bigint NOT NULL,
    sender_timestamp  bigint,
    PRIMARY KEY (session_id, jid)
);

-- Recently sent messages, kept to answer retry receipts.
CREATE TABLE wa_sent_messages (
    session_id  uuid NOT NULL,
    chat_jid    text NOT NULL,
    message_id  text NOT NULL,
    payload     bytea NOT NULL,
    sent_at     bigint NOT NULL,                         -- unix seconds
    PRIMARY KEY (session_id, chat_jid, message_id)
);
CREATE INDEX wa_sent_messages_sent_at_idx ON wa_sent_messages (session_id, sent_at);

-- Decrypted inbound messages awaiting the durability hook's commit.
CREATE TABLE wa_pending_inbound (
    session_id   uuid NOT NULL,
    chat         text NOT NULL,
    sender       text NOT NULL,
    message_id   text NOT NULL,
    message      bytea NOT NULL,
    inserted_at  bigint NOT NULL,                        -- unix seconds
    PRIMARY KEY (session_id, chat, sender, message_id)
);
CREATE INDEX wa_pending_inbound_inserted_at_idx ON wa_pending_inbound (session_id, inserted_at);

-- Per-message secrets for add-ons (poll votes, reactions, edits).
CREATE TABLE wa_msg_secrets (
    session_id  uuid NOT NULL,
    chat        text NOT NULL,
    sender      text NOT NULL,
    msg_id      text NOT NULL,
    secret      bytea NOT NULL,
    expires_at  bigint NOT NULL,                         -- unix seconds, 0 = never
    message_ts  bigint NOT NULL,                         -- parent message time, 0 = unknown
    PRIMARY KEY (session_id, chat, sender, msg_id)
);
CREATE INDEX wa_msg_secrets_expiry_idx ON wa_msg_secrets (session_id, expires_at) WHERE expires_at <> 0;
