import { Transform, type TransformCallback } from 'node:stream';

// PostgreSQL binary COPY: an 11-byte signature, 4 bytes of flags, a length-prefixed header
// extension, then per row an int16 field count and per field an int32 length and the bytes;
// a field count of -1 ends the data. https://www.postgresql.org/docs/current/sql-copy.html
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const HEADER_FIXED = SIGNATURE.length + 8;

const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');

/**
 * Turns a binary COPY of one text column (each value a JSON document) into one JSON array.
 * Binary rather than text format because text COPY escapes backslashes, which JSON is full
 * of; here each value's bytes pass through untouched, without a parse or a copy per row.
 */
export class CopyJsonArray extends Transform {
  private pending: Buffer = Buffer.alloc(0);
  private headerDone = false;
  private rows = 0;
  private ended = false;

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
      out.push(OPEN);
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
      if (this.rows > 0) out.push(COMMA);
      out.push(buf.subarray(pos + 6, pos + 6 + length));
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
    callback(null, CLOSE);
  }
}
