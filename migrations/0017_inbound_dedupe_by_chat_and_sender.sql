-- WhatsApp ids are chosen by the sending device, so two contacts (or one contact in two
-- chats) can send messages under the same id; WhatsApp tells messages apart by chat, sender
-- and id together, and so does the dedupe of what a linked number receives.
CREATE UNIQUE INDEX inbound_messages_key_idx
    ON inbound_messages (user_id, chat, sender, wa_message_id);
DROP INDEX inbound_messages_wa_id_idx;
