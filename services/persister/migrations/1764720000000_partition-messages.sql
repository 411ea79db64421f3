-- Up Migration

-- messages becomes range-partitioned by received_at, one partition per UTC day, so retention
-- drops whole expired days (DROP TABLE: no dead rows, no vacuum, no index churn) instead of
-- deleting row by row. Why time and not seq ranges, and how seq stays unique: README,
-- "Storage and retention".
--
-- Postgres requires the partition key in every unique constraint, so the key is
-- (seq, received_at). That keeps ON CONFLICT DO NOTHING idempotent: a message's received_at is
-- written by ingest into the stream envelope, so a redelivery of seq N carries the same
-- received_at, lands in the same partition and conflicts there.
--
-- The old table is copied, not attached as one big partition: attached, its rows would only
-- expire when its newest row did. The copy runs in this migration's transaction, so it either
-- moves every row or none. LIKE copies every column the old table has (a later or earlier
-- migration may have added some), and the indexes are built after the load, which is faster
-- than maintaining them row by row.

ALTER TABLE messages RENAME TO messages_unpartitioned;
ALTER INDEX messages_pkey RENAME TO messages_unpartitioned_pkey;
ALTER INDEX messages_id_key RENAME TO messages_unpartitioned_id_key;

CREATE TABLE messages (LIKE messages_unpartitioned INCLUDING DEFAULTS) PARTITION BY RANGE (received_at);

-- The guard: a row whose day has no partition yet (the persister's keeper or the retention job
-- did not run in time) lands here instead of failing the write. createPartition moves such rows
-- into their day's partition when it is made.
CREATE TABLE messages_default PARTITION OF messages DEFAULT;

DO $$
DECLARE
  day date;
BEGIN
  FOR day IN
    SELECT DISTINCT (received_at AT TIME ZONE 'UTC')::date FROM messages_unpartitioned
    UNION SELECT (now() AT TIME ZONE 'UTC')::date
    UNION SELECT (now() AT TIME ZONE 'UTC')::date + 1
  LOOP
    EXECUTE format(
      'CREATE TABLE %I PARTITION OF messages FOR VALUES FROM (%L) TO (%L)',
      'messages_p' || to_char(day, 'YYYYMMDD'),
      to_char(day, 'YYYY-MM-DD') || 'T00:00:00Z',
      to_char(day + 1, 'YYYY-MM-DD') || 'T00:00:00Z');
  END LOOP;
END $$;

INSERT INTO messages SELECT * FROM messages_unpartitioned;
DROP TABLE messages_unpartitioned;

ALTER TABLE messages ADD PRIMARY KEY (seq, received_at);
-- GET /api/messages/{id}: one index probe per partition.
CREATE INDEX messages_id_idx ON messages (id);
-- ?from=&to=: partitions are pruned by received_at; inside a partition this index finds the range.
CREATE INDEX messages_received_at_idx ON messages (received_at);

-- Down Migration
ALTER TABLE messages RENAME TO messages_partitioned;
CREATE TABLE messages (LIKE messages_partitioned INCLUDING DEFAULTS);
INSERT INTO messages SELECT * FROM messages_partitioned;
DROP TABLE messages_partitioned;
ALTER TABLE messages ADD PRIMARY KEY (seq);
ALTER TABLE messages ADD CONSTRAINT messages_id_key UNIQUE (id);
