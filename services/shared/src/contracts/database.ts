/**
 * The database schema is a contract between the persister (which writes it) and query (which
 * reads it): table and column names and the JSON each row is read back as, defined once here.
 * The persister's migrations (services/persister/migrations) create exactly these tables.
 */
export const messagesTable = {
  name: 'messages',
  /** Partitioned by received_at, one partition per UTC day: this prefix + YYYYMMDD. */
  partitionPrefix: 'messages_p',
  /** The partition for rows whose day has no partition yet. */
  defaultPartition: 'messages_default',
  columns: {
    /** JetStream's stream sequence; primary key, so a redelivery is a no-op. */
    seq: 'seq',
    id: 'id',
    receivedAt: 'received_at',
    persistedAt: 'persisted_at',
    /** json, not jsonb: the client's bytes as sent. */
    payload: 'payload',
    /** The token sub it was posted with; NULL without authentication. */
    publisher: 'publisher',
  },
} as const;

/** Messages the persister could never store, with why. */
export const deadLettersTable = {
  name: 'dead_letters',
  columns: {
    seq: 'seq',
    id: 'id',
    receivedAt: 'received_at',
    failedAt: 'failed_at',
    deliveries: 'deliveries',
    reason: 'reason',
    /** The stream message's text as it arrived. */
    envelope: 'envelope',
  },
} as const;

/** RFC 3339 UTC with milliseconds, as the contract's timestamps are written. */
const utc = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

const m = messagesTable.columns;
/**
 * One messages row as the contract's message JSON text, assembled by Postgres so that Node never
 * parses or re-serialises a payload: payload is json, so its text is the client's bytes.
 */
export const MESSAGE_JSON_SQL = `'{"id":"' || ${m.id} || '","seq":' || ${m.seq}
  || ',"receivedAt":"' || ${utc(m.receivedAt)}
  || '","persistedAt":"' || ${utc(m.persistedAt)}
  || '",' || COALESCE('"publisher":' || to_json(${m.publisher})::text || ',', '')
  || '"payload":' || ${m.payload}::text || '}'`;

const d = deadLettersTable.columns;
/** One dead_letters row as JSON text (GET /api/dead-letters). */
export const DEAD_LETTER_JSON_SQL = `json_build_object(
  'seq', ${d.seq}, 'id', ${d.id},
  'receivedAt', ${utc(d.receivedAt)},
  'failedAt', ${utc(d.failedAt)},
  'deliveries', ${d.deliveries}, 'reason', ${d.reason}, 'envelope', ${d.envelope})::text`;
