-- Indexes that hold only the rows their queries look for. A message leaves the queue index
-- once sent (or failed, delivered...), and a campaign the due index once dispatched, instead
-- of moving to another place in it; a message without a provider id or a campaign has no
-- entry in those indexes. Each message so costs three fewer index writes on its way, and the
-- queue index stays as small as the queue. A query uses a partial index only when its WHERE
-- names the index's condition (`status = 'queued'`, `provider_id = $1`...): `status IN (...)`
-- does not, so the store's queries on the queue compare the status with `=`.
DROP INDEX messages_queue;
CREATE INDEX messages_queue ON messages (status, phone_id, next_try_at)
    WHERE status = 'scheduled' OR status = 'queued' OR status = 'sending';
DROP INDEX messages_provider;
CREATE INDEX messages_provider ON messages (provider_id) WHERE provider_id IS NOT NULL;
DROP INDEX messages_campaign;
CREATE INDEX messages_campaign ON messages (campaign_id) WHERE campaign_id IS NOT NULL;
DROP INDEX campaigns_due;
CREATE INDEX campaigns_due ON campaigns (at) WHERE status = 'scheduled';
