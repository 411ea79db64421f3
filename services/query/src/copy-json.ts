import { Transform, type TransformCallback } from 'node:stream';

// PostgreSQL binary COPY: an 11-byte signature, 4 bytes of flags, a length-prefixed header
// extension, then per row an int16 field count and per field an int32 length and the bytes;
// a field count of -1 ends the data. https://www.postgresql.org/docs/current/sql-copy.html
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const HEADER_FIXED = SIGNATURE.length + 8;

/** One JSON array, or NDJSON (one document per line, https://github.com/ndjson/ndjson-spec). */
export type ExportFormat = 'array' | 'ndjson';

const EMPTY = Buffer.alloc(0);
const FRAMING: Record<ExportFormat, { open: Buffer; between: Buffer; after: Buffer; close: Buffer; oneLine: boolean }> = {
  array: { open: Buffer.from('['), between: Buffer.from(','), after: EMPTY, close: Buffer.from(']'), oneLine: false },
  ndjson: { open: EMPTY, between: EMPTY, after: Buffer.from('\n'), close: EMPTY, oneLine: true },
};

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;

/**
 * A payload is stored as the client sent it, and JSON allows raw line breaks as whitespace
 * between tokens (never inside a string, where they must be escaped: RFC 8259 section 7), so
 * every CR or LF byte in a document is insignificant and becomes a space: one line, same JSON.
 */
export function oneLine(doc: Buffer): Buffer;
export function oneLine(doc: string): string;
export function oneLine(doc: Buffer | string): Buffer | string {
  if (typeof doc === 'string') return doc.replace(/[\r\n]/g, ' ');
  if (doc.indexOf(LF) === -1 && doc.indexOf(CR) === -1) return doc;
  const copy = Buffer.from(doc);
  for (let i = 0; i < copy.length; i++) if (copy[i] === LF || copy[i] === CR) copy[i] = SPACE;
  return copy;
}

/**
 * Turns a binary COPY of one text column (each value a JSON document) into one JSON array or
 * NDJSON. Binary rather than text format because text COPY escapes backslashes, which JSON is
 * full of; here each value's bytes pass through untouched, without a parse or a copy per row.
 */
export class CopyJsonDocuments extends Transform {
  private readonly framing: (typeof FRAMING)[ExportFormat];
  private pending: Buffer = Buffer.alloc(0);
  private headerDone = false;
  private rows = 0;
  private ended = false;

  constructor(format: ExportFormat = 'array') {
    super();
    this.framing = FRAMING[format];
  }

  get rowCount(): number {
    return this.rows;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let pos = 0;
    const out: Buffer[] = [];
    if (!this.headerDone) {
      if (buf.length < HEADER_FIXED) {
        this.pending = buf;
        return callback();
      }
      if (!buf.subarray(0, SIGNATURE.length).equals(SIGNATURE)) return callback(new Error('not a binary COPY stream'));
      const extension = buf.readUInt32BE(SIGNATURE.length + 4);
      if (buf.length < HEADER_FIXED + extension) {
        this.pending = buf;
        return callback();
      }
      pos = HEADER_FIXED + extension;
      this.headerDone = true;
      if (this.framing.open.length) out.push(this.framing.open);
    }
    while (!this.ended && buf.length - pos >= 2) {
      const fields = buf.readInt16BE(pos);
      if (fields === -1) {
        this.ended = true;
        pos += 2;
        break;
      }
      if (fields !== 1) return callback(new Error(`expected one column, got ${fields}`));
      if (buf.length - pos < 6) break;
      const length = buf.readInt32BE(pos + 2);
      if (length < 0) return callback(new Error('unexpected NULL document'));
      if (buf.length - pos < 6 + length) break;
      if (this.rows > 0 && this.framing.between.length) out.push(this.framing.between);
      const doc = buf.subarray(pos + 6, pos + 6 + length);
      out.push(this.framing.oneLine ? oneLine(doc) : doc);
      if (this.framing.after.length) out.push(this.framing.after);
      this.rows += 1;
      pos += 6 + length;
    }
    this.pending = pos < buf.length ? buf.subarray(pos) : Buffer.alloc(0);
    buf = Buffer.alloc(0);
    if (out.length) this.push(out.length === 1 ? out[0] : Buffer.concat(out));
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (!this.headerDone || !this.ended) return callback(new Error('COPY stream ended early'));
    callback(null, this.framing.close.length ? this.framing.close : undefined);
  }
}
