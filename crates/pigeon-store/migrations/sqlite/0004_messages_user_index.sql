-- The messaging APIs list an account's messages of both directions, newest first.
CREATE INDEX messages_user ON messages (user_id, id);
