-- How many messages each account has per phone (0: none yet), direction and status, kept by
-- triggers in the same transaction as the messages themselves: the lists' totals (Reach's
-- `totalMessages`, Astandes' `total`) read these few rows instead of counting a large
-- account's messages one by one. A later migration that rebuilds `messages` (new table, copy,
-- rename) drops these triggers with the old table: it must create them again.
CREATE TABLE message_counts (
    user_id BIGINT NOT NULL,
    phone_id BIGINT NOT NULL,
    direction TEXT NOT NULL,
    status TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (user_id, phone_id, direction, status)
) WITHOUT ROWID;

INSERT INTO message_counts (user_id, phone_id, direction, status, n)
SELECT user_id, COALESCE(phone_id, 0), direction, status, COUNT(*)
FROM messages GROUP BY user_id, COALESCE(phone_id, 0), direction, status;

CREATE TRIGGER message_counts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_counts (user_id, phone_id, direction, status, n)
    VALUES (NEW.user_id, COALESCE(NEW.phone_id, 0), NEW.direction, NEW.status, 1)
    ON CONFLICT (user_id, phone_id, direction, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER message_counts_delete AFTER DELETE ON messages BEGIN
    UPDATE message_counts SET n = n - 1
    WHERE user_id = OLD.user_id AND phone_id = COALESCE(OLD.phone_id, 0)
        AND direction = OLD.direction AND status = OLD.status;
END;

-- A phone deleted sets its messages' phone_id to NULL, which fires this too.
CREATE TRIGGER message_counts_update AFTER UPDATE OF user_id, phone_id, direction, status ON messages
WHEN OLD.status IS NOT NEW.status OR OLD.phone_id IS NOT NEW.phone_id
    OR OLD.user_id IS NOT NEW.user_id OR OLD.direction IS NOT NEW.direction
BEGIN
    UPDATE message_counts SET n = n - 1
    WHERE user_id = OLD.user_id AND phone_id = COALESCE(OLD.phone_id, 0)
        AND direction = OLD.direction AND status = OLD.status;
    INSERT INTO message_counts (user_id, phone_id, direction, status, n)
    VALUES (NEW.user_id, COALESCE(NEW.phone_id, 0), NEW.direction, NEW.status, 1)
    ON CONFLICT (user_id, phone_id, direction, status) DO UPDATE SET n = n + 1;
END;

-- A deleted account's counts go with it (its messages' triggers find no row to decrement).
CREATE TRIGGER message_counts_user_delete AFTER DELETE ON users BEGIN
    DELETE FROM message_counts WHERE user_id = OLD.id;
END;
