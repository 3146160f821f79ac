-- Messages' inserts add to `message_counts` themselves, in the same write (pigeon-store's
-- `message_counts::NewCounts`), instead of through this trigger: with a trigger and the table's
-- foreign keys, SQLite copies every page an insert touches to its statement journal first,
-- which cost the group committer a sixth of its time at saturation. Whatever inserts into
-- `messages` outside pigeon-store must add its rows to the counts as well.
DROP TRIGGER message_counts_insert;
