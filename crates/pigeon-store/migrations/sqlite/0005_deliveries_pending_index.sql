-- The webhook worker looks for the endpoints with deliveries due, then claims each one's
-- oldest: with the status first, the pending deliveries of an endpoint are one range of one
-- index, so the endpoints are found by skipping from one to the next instead of reading
-- every pending delivery.
DROP INDEX deliveries_due;
DROP INDEX deliveries_endpoint;
CREATE INDEX deliveries_pending ON deliveries (status, endpoint, next_attempt_at);
