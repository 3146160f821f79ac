-- Which API created a message (`astandes`, `reach`; NULL for RaspiSMS campaigns), so that its
-- notifications take that API's shape.
ALTER TABLE messages ADD COLUMN api TEXT;
UPDATE messages SET api = 'astandes'
    WHERE campaign_id IS NULL AND direction = 'outbound' AND phone_id IN (SELECT phone_id FROM devices);

-- Request headers of a delivery beyond Standard Webhooks' (a dialect's own signature), as a
-- JSON object.
ALTER TABLE deliveries ADD COLUMN headers TEXT;
