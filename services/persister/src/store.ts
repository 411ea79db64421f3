import type { Pool } from '@falcon/shared';

export interface MessageRow {
  seq: number;
  id: string;
  receivedAt: string;
  payloadJson: string;
}

export interface DeadLetter {
  seq: number;
  id: string | null;
  receivedAt: string | null;
  deliveries: number;
  reason: string;
  envelope: string;
}

export interface MessageStore {
  /** Inserts the rows in one statement (one transaction); returns how many were new. */
  insert(rows: MessageRow[]): Promise<number>;
  deadLetter(entry: DeadLetter): Promise<void>;
}

// unnest over parallel arrays: one round trip and one transaction per batch, and ON CONFLICT
// makes a redelivered seq a no-op rather than an error.
const INSERT_MESSAGES = `
  INSERT INTO messages (seq, id, received_at, payload)
  SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::timestamptz[], $4::json[])
  ON CONFLICT DO NOTHING`;

const INSERT_DEAD_LETTER = `
  INSERT INTO dead_letters (seq, id, received_at, deliveries, reason, envelope)
  VALUES ($1, $2, $3, $4, $5, $6)
  ON CONFLICT (seq) DO UPDATE SET deliveries = EXCLUDED.deliveries, reason = EXCLUDED.reason, failed_at = now()`;

export function createMessageStore(pool: Pool): MessageStore {
  return {
    async insert(rows) {
      if (rows.length === 0) return 0;
      const result = await pool.query(INSERT_MESSAGES, [
        rows.map((r) => r.seq),
        rows.map((r) => r.id),
        rows.map((r) => r.receivedAt),
        rows.map((r) => r.payloadJson),
      ]);
      return result.rowCount ?? 0;
    },
    async deadLetter(entry) {
      await pool.query(INSERT_DEAD_LETTER, [entry.seq, entry.id, entry.receivedAt, entry.deliveries, entry.reason, entry.envelope]);
    },
  };
}
