import { pipeline } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { checkout, DEAD_LETTER_JSON_SQL, deadLettersTable, MESSAGE_JSON_SQL, messagesTable, type Pool } from '@falcon/shared';
import { CopyJsonDocuments, type ExportFormat } from './copy-json.js';
import type { TimeRange } from './time-range.js';

export type { ExportFormat } from './copy-json.js';

const M = messagesTable.columns;
const MESSAGES = messagesTable.name;
const D = deadLettersTable.columns;

export interface Page {
  /** Each row's JSON text. */
  docs: string[];
  lastSeq: number | undefined;
  hasMore: boolean;
}

export interface MessageRepository {
  /**
   * Writes every message (in the range) to `sink` as one JSON array or as NDJSON, in constant
   * memory, within `statementTimeoutMs` (default: the pool's).
   */
  streamAll(sink: Writable, options?: { format?: ExportFormat; range?: TimeRange; statementTimeoutMs?: number }): Promise<number>;
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
  if (range?.from !== undefined) sql += ` AND ${M.receivedAt} >= ${pg.escapeLiteral(range.from)}::timestamptz`;
  if (range?.to !== undefined) sql += ` AND ${M.receivedAt} < ${pg.escapeLiteral(range.to)}::timestamptz`;
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
        // A full export may legitimately take longer than the pool's statement timeout, but not forever.
        if (options.statementTimeoutMs !== undefined) await client.query(`SET LOCAL statement_timeout = ${Math.floor(options.statementTimeoutMs)}`);
        const copy = client.query(copyStreams.to(`COPY (SELECT ${MESSAGE_JSON_SQL} FROM ${MESSAGES} WHERE true${rangeCondition(options.range)} ORDER BY ${M.seq}) TO STDOUT (FORMAT binary)`));
        // The sink ends only after COMMIT and the connection's return: a client that reads the
        // export to its end and asks for the next one must find this export's slot free.
        await pipeline(copy as Readable, array, sink, { end: false });
        await client.query('COMMIT');
        client.release();
        sink.end();
        return array.rowCount;
      } catch (err) {
        // The connection may be mid-COPY; destroy it rather than return it to the pool.
        client.release(err instanceof Error ? err : new Error(String(err)));
        // Never leave the answer open: a failure after the last row (COMMIT) cuts it short too.
        sink.destroy(err instanceof Error ? err : new Error(String(err)));
        throw err;
      }
    },
    page: (after, limit, range) => page(pool, `SELECT ${M.seq} AS seq, ${MESSAGE_JSON_SQL} AS doc FROM ${MESSAGES} WHERE ${M.seq} > $1${rangeCondition(range)} ORDER BY ${M.seq} LIMIT $2`, after, limit),
    async byId(id) {
      const result = await pool.query<{ doc: string }>(`SELECT ${MESSAGE_JSON_SQL} AS doc FROM ${MESSAGES} WHERE ${M.id} = $1`, [id]);
      return result.rows[0]?.doc;
    },
    deadLetters: (after, limit) => page(pool, `SELECT ${D.seq} AS seq, ${DEAD_LETTER_JSON_SQL} AS doc FROM ${deadLettersTable.name} WHERE ${D.seq} > $1 ORDER BY ${D.seq} LIMIT $2`, after, limit),
  };
}
