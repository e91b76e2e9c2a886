-- A websocket that reconnects is sent what changed while it was away: the messages of its
-- user whose status moved since a point in time. Every status change sets updated_at.
CREATE INDEX messages_changes_idx ON messages (user_id, updated_at);
