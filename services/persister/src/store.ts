import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import copyStreams from 'pg-copy-streams';
import { checkout, deadLettersTable, messagesTable, type Pool, type PoolClient } from '@falcon/shared';

export interface MessageRow {
  seq: number;
  id: string;
  receivedAt: string;
  /** The token sub it was posted with; absent without authentication. */
  publisher?: string;
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
  /** Inserts the rows in one transaction; returns how many were new. */
  insert(rows: MessageRow[]): Promise<number>;
  deadLetter(entry: DeadLetter): Promise<void>;
}

const D = deadLettersTable.columns;
const INSERT_DEAD_LETTER = `
  INSERT INTO ${deadLettersTable.name} (${D.seq}, ${D.id}, ${D.receivedAt}, ${D.deliveries}, ${D.reason}, ${D.envelope})
  VALUES ($1, $2, $3, $4, $5, $6)
  ON CONFLICT (${D.seq}) DO UPDATE SET ${D.deliveries} = EXCLUDED.${D.deliveries}, ${D.reason} = EXCLUDED.${D.reason}, ${D.failedAt} = now()`;

// COPY into a per-connection temporary table, then one INSERT ... ON CONFLICT DO NOTHING: COPY
// is Postgres' fastest way in (no array literals to build and parse), and the INSERT keeps a
// redelivered seq a no-op. The staging table empties itself at COMMIT.
const M = messagesTable.columns;
const COLUMNS = `${M.seq}, ${M.id}, ${M.receivedAt}, ${M.payload}, ${M.publisher}`;
const STAGING = `CREATE TEMP TABLE IF NOT EXISTS falcon_staging
  (${M.seq} bigint, ${M.id} uuid, ${M.receivedAt} timestamptz, ${M.payload} json, ${M.publisher} text) ON COMMIT DELETE ROWS`;
const COPY_IN = `COPY falcon_staging (${COLUMNS}) FROM STDIN`;
const MERGE = `INSERT INTO ${messagesTable.name} (${COLUMNS})
  SELECT ${COLUMNS} FROM falcon_staging ON CONFLICT DO NOTHING`;

// COPY's text format: backslash, newline, carriage return and tab are escaped; the payload
// is JSON text, which may hold all four (raw whitespace, escapes).
const COPY_SPECIAL = /[\\\n\r\t]/g;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function copyText(text: string): string {
  const escaped = COPY_SPECIAL.test(text) ? text.replace(COPY_SPECIAL, (c) => COPY_ESCAPES[c]!) : text;
  COPY_SPECIAL.lastIndex = 0;
  return escaped;
}

/** One row in COPY's text format; `\N` is its NULL (no publisher). */
export function copyLine(row: MessageRow): string {
  return `${row.seq}\t${row.id}\t${row.receivedAt}\t${copyText(row.payloadJson)}\t${row.publisher === undefined ? '\\N' : copyText(row.publisher)}\n`;
}

const prepared = new WeakSet<PoolClient>();

export function createMessageStore(pool: Pool): MessageStore {
  return {
    async insert(rows) {
      if (rows.length === 0) return 0;
      const client = await checkout(pool);
      try {
        if (!prepared.has(client)) {
          await client.query(STAGING);
          prepared.add(client);
        }
        await client.query('BEGIN');
        await pipeline(Readable.from([rows.map(copyLine).join('')]), client.query(copyStreams.from(COPY_IN)));
        const result = await client.query(MERGE);
        await client.query('COMMIT');
        client.release();
        return result.rowCount ?? 0;
      } catch (err) {
        // The connection may be mid-COPY or mid-transaction: destroy it rather than reuse it.
        client.release(err instanceof Error ? err : new Error(String(err)));
        throw err;
      }
    },
    async deadLetter(entry) {
      await pool.query(INSERT_DEAD_LETTER, [entry.seq, entry.id, entry.receivedAt, entry.deliveries, entry.reason, entry.envelope]);
    },
  };
}
