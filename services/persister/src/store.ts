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
  /** Inserts the rows in one statement (one transaction); returns how many were new. */
  insert(rows: MessageRow[]): Promise<number>;
  deadLetter(entry: DeadLetter): Promise<void>;
}

const D = deadLettersTable.columns;
const INSERT_DEAD_LETTER = `
  INSERT INTO ${deadLettersTable.name} (${D.seq}, ${D.id}, ${D.receivedAt}, ${D.deliveries}, ${D.reason}, ${D.envelope})
  VALUES ($1, $2, $3, $4, $5, $6)
  ON CONFLICT (${D.seq}) DO UPDATE SET ${D.deliveries} = EXCLUDED.${D.deliveries}, ${D.reason} = EXCLUDED.${D.reason}, ${D.failedAt} = now()`;

/**
 * Batches up to this size are one INSERT of a JSON document; larger ones are COPYed. Measured
 * on the 2-core development machine: at 10-50 rows the single INSERT stores 2-3x the rows per
 * second of BEGIN + COPY into a staging table + INSERT ... SELECT + COMMIT (five round trips
 * and their write syscalls), at a third of the persister's CPU; at 1,000 rows a plain COPY is
 * fastest.
 */
export const COPY_THRESHOLD = 200;

const M = messagesTable.columns;
const COLUMNS = `${M.seq}, ${M.id}, ${M.receivedAt}, ${M.payload}, ${M.publisher}`;

// One statement, so no BEGIN/COMMIT: Postgres runs it as its own transaction. Prepared once
// per connection (a fixed text, whatever the batch size). The payload travels as a JSON
// string and is cast on its own, so each row's text must be exactly one JSON value (a
// payload spliced in raw could close its object early and add fields), and is stored as
// those bytes: json, not jsonb. ON CONFLICT DO NOTHING keeps a redelivered seq a no-op.
const INSERT_ROWS = {
  name: 'falcon-insert-rows',
  text: `INSERT INTO ${messagesTable.name} (${COLUMNS})
  SELECT seq, id, received_at, payload::json, publisher
  FROM json_to_recordset($1::json) AS r(seq bigint, id uuid, received_at timestamptz, payload text, publisher text)
  ON CONFLICT DO NOTHING`,
};
// A large batch goes straight into the table: one statement, and COPY is Postgres' fastest
// way in. COPY has no ON CONFLICT, so a batch holding a message that is already stored (a
// redelivery after a crash or a lost ack) fails as a whole with unique_violation, changes
// nothing, and is written again with INSERT_ROWS.
const COPY_IN = `COPY ${messagesTable.name} (${COLUMNS}) FROM STDIN`;
const UNIQUE_VIOLATION = '23505';

/** The rows as the JSON array INSERT_ROWS reads; id and receivedAt were checked by splitEnvelope. */
export function rowsDocument(rows: MessageRow[]): string {
  let doc = '[';
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const publisher = r.publisher === undefined ? '' : `,"publisher":${JSON.stringify(r.publisher)}`;
    doc += `${i === 0 ? '' : ','}{"seq":${r.seq},"id":"${r.id}","received_at":"${r.receivedAt}","payload":${JSON.stringify(r.payloadJson)}${publisher}}`;
  }
  return `${doc}]`;
}

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

function copyRowsText(rows: MessageRow[]): string {
  let text = '';
  for (const row of rows) text += copyLine(row);
  return text;
}

async function insertRows(client: PoolClient, rows: MessageRow[]): Promise<number> {
  const result = await client.query({ ...INSERT_ROWS, values: [rowsDocument(rows)] });
  return result.rowCount ?? 0;
}

async function copyRows(client: PoolClient, rows: MessageRow[]): Promise<number> {
  try {
    await pipeline(Readable.from([copyRowsText(rows)]), client.query(copyStreams.from(COPY_IN)));
    return rows.length;
  } catch (err) {
    if ((err as { code?: string }).code !== UNIQUE_VIOLATION) throw err;
    return insertRows(client, rows);
  }
}

export function createMessageStore(pool: Pool): MessageStore {
  return {
    async insert(rows) {
      if (rows.length === 0) return 0;
      const client = await checkout(pool);
      try {
        const inserted = rows.length > COPY_THRESHOLD ? await copyRows(client, rows) : await insertRows(client, rows);
        client.release();
        return inserted;
      } catch (err) {
        // The connection may be mid-COPY: destroy it rather than reuse it.
        client.release(err instanceof Error ? err : new Error(String(err)));
        throw err;
      }
    },
    async deadLetter(entry) {
      await pool.query(INSERT_DEAD_LETTER, [entry.seq, entry.id, entry.receivedAt, entry.deliveries, entry.reason, entry.envelope]);
    },
  };
}
