import { pipeline } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { checkout, type Pool } from '@falcon/shared';
import { CopyJsonDocuments, type ExportFormat } from './copy-json.js';
import type { TimeRange } from './time-range.js';

export type { ExportFormat } from './copy-json.js';

// The contract's JSON for one message, assembled by Postgres so Node never parses or
// re-serialises a payload: payload is json, so its text is the client's bytes.
const TS = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
const MESSAGE_JSON = `'{"id":"' || id || '","seq":' || seq
  || ',"receivedAt":"' || to_char(received_at AT TIME ZONE 'UTC', ${TS})
  || '","persistedAt":"' || to_char(persisted_at AT TIME ZONE 'UTC', ${TS})
  || '",' || COALESCE('"publisher":' || to_json(publisher)::text || ',', '')
  || '"payload":' || payload::text || '}'`;

const DEAD_LETTER_JSON = `json_build_object(
  'seq', seq, 'id', id,
  'receivedAt', to_char(received_at AT TIME ZONE 'UTC', ${TS}),
  'failedAt', to_char(failed_at AT TIME ZONE 'UTC', ${TS}),
  'deliveries', deliveries, 'reason', reason, 'envelope', envelope)::text`;

export interface Page {
  /** Each row's JSON text. */
  docs: string[];
  lastSeq: number | undefined;
  hasMore: boolean;
}

export interface MessageRepository {
  /** Writes every message (in the range) to `sink` as one JSON array or as NDJSON, in constant memory. */
  streamAll(sink: Writable, options?: { format?: ExportFormat; range?: TimeRange }): Promise<number>;
  page(after: number, limit: number, range?: TimeRange): Promise<Page>;
  /** The message's JSON text, or undefined. */
  byId(id: string): Promise<string | undefined>;
  deadLetters(after: number, limit: number): Promise<Page>;
}

/**
 * The receivedAt bounds as SQL on received_at, the partition key: only the partitions that
 * overlap the range are read, and inside them the received_at index finds the rows. Bounds
 * are literals (COPY takes no parameters); parseTimestamp made them canonical UTC timestamps.
 */
export function rangeCondition(range: TimeRange | undefined): string {
  let sql = '';
  if (range?.from !== undefined) sql += ` AND received_at >= ${pg.escapeLiteral(range.from)}::timestamptz`;
  if (range?.to !== undefined) sql += ` AND received_at < ${pg.escapeLiteral(range.to)}::timestamptz`;
  return sql;
}

async function page(pool: Pool, sql: string, after: number, limit: number): Promise<Page> {
  const result = await pool.query<{ seq: number; doc: string }>(sql, [after, limit + 1]);
  const rows = result.rows.slice(0, limit);
  return {
    docs: rows.map((r) => r.doc),
    lastSeq: rows.at(-1)?.seq,
    hasMore: result.rows.length > limit,
  };
}

export function createMessageRepository(pool: Pool): MessageRepository {
  return {
    async streamAll(sink, options = {}) {
      const client = await checkout(pool);
      const array = new CopyJsonDocuments(options.format ?? 'array');
      try {
        await client.query('BEGIN READ ONLY');
        // A full export may legitimately take longer than the pool's statement timeout.
        await client.query('SET LOCAL statement_timeout = 0');
        const copy = client.query(copyStreams.to(`COPY (SELECT ${MESSAGE_JSON} FROM messages WHERE true${rangeCondition(options.range)} ORDER BY seq) TO STDOUT (FORMAT binary)`));
        await pipeline(copy as Readable, array, sink);
        await client.query('COMMIT');
        client.release();
        return array.rowCount;
      } catch (err) {
        // The connection may be mid-COPY; destroy it rather than return it to the pool.
        client.release(err instanceof Error ? err : new Error(String(err)));
        throw err;
      }
    },
    page: (after, limit, range) => page(pool, `SELECT seq, ${MESSAGE_JSON} AS doc FROM messages WHERE seq > $1${rangeCondition(range)} ORDER BY seq LIMIT $2`, after, limit),
    async byId(id) {
      const result = await pool.query<{ doc: string }>(`SELECT ${MESSAGE_JSON} AS doc FROM messages WHERE id = $1`, [id]);
      return result.rows[0]?.doc;
    },
    deadLetters: (after, limit) => page(pool, `SELECT seq, ${DEAD_LETTER_JSON} AS doc FROM dead_letters WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit),
  };
}
