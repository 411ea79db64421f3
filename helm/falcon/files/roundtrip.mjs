// `helm test`: posts one message through ingest, then sees it arrive on the gateway's WebSocket
// and reads it back through query. Plain Node 20 (fetch, node:http) so it runs in the Falcon
// image with nothing installed; the WebSocket client is the few lines of RFC 6455 a reader needs.
// Env: INGEST_URL, QUERY_URL, REALTIME_URL, TIMEOUT_MS (default 60000), and with auth on either
// FALCON_TOKEN or AUTH_JWT_SECRET (+ AUTH_ISSUER, AUTH_AUDIENCE) to mint a short-lived HS256 token.
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';

const { INGEST_URL, QUERY_URL, REALTIME_URL, AUTH_JWT_SECRET, AUTH_ISSUER, AUTH_AUDIENCE } = process.env;
const deadline = Date.now() + Number(process.env.TIMEOUT_MS ?? 60000);

/** A JWT (RFC 7519) signed with HS256, the key being the secret's UTF-8 bytes (the contract's rule). */
function mintToken(secret) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: 'helm-test', scope: 'messages:write messages:read messages:subscribe', iat: now, exp: now + 600 };
  if (AUTH_ISSUER) claims.iss = AUTH_ISSUER;
  if (AUTH_AUDIENCE) claims.aud = AUTH_AUDIENCE;
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${unsigned}.${createHmac('sha256', Buffer.from(secret, 'utf8')).update(unsigned).digest('base64url')}`;
}
const FALCON_TOKEN = process.env.FALCON_TOKEN || (AUTH_JWT_SECRET ? mintToken(AUTH_JWT_SECRET) : undefined);
const auth = FALCON_TOKEN ? { authorization: `Bearer ${FALCON_TOKEN}` } : {};
const log = (msg, fields = {}) => console.log(JSON.stringify({ msg, ...fields }));

/** Opens a WebSocket and calls onText for every text message; resolves once upgraded. */
function openWebSocket(url, onText) {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const client = url.protocol === 'https:' || url.protocol === 'wss:' ? https : http;
    const req = client.request(url, {
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13' },
    });
    req.on('response', (res) => reject(new Error(`WebSocket refused: HTTP ${res.statusCode}`)));
    req.on('error', reject);
    req.on('upgrade', (res, socket, head) => {
      // RFC 6455 section 4.2.2: the accept value proves the server understood the handshake.
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      if (res.headers['sec-websocket-accept'] !== accept) return reject(new Error('bad Sec-WebSocket-Accept'));
      let buffer = head;
      let fragments = [];
      const send = (opcode, payload) => {
        // Client frames are masked (RFC 6455 section 5.3); control frames here are short.
        const mask = randomBytes(4);
        const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
        socket.write(Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | masked.length]), mask, masked]));
      };
      const parse = () => {
        for (;;) {
          if (buffer.length < 2) return;
          const fin = (buffer[0] & 0x80) !== 0;
          const opcode = buffer[0] & 0x0f;
          const masked = (buffer[1] & 0x80) !== 0;
          let length = buffer[1] & 0x7f;
          let offset = 2;
          if (length === 126) {
            if (buffer.length < 4) return;
            length = buffer.readUInt16BE(2);
            offset = 4;
          } else if (length === 127) {
            if (buffer.length < 10) return;
            length = Number(buffer.readBigUInt64BE(2));
            offset = 10;
          }
          const maskKey = masked ? buffer.subarray(offset, offset + 4) : undefined;
          if (masked) offset += 4;
          if (buffer.length < offset + length) return;
          let payload = buffer.subarray(offset, offset + length);
          if (maskKey) payload = Buffer.from(payload.map((b, i) => b ^ maskKey[i % 4]));
          buffer = buffer.subarray(offset + length);
          if (opcode === 0x8) return socket.end();
          if (opcode === 0x9) send(0xa, [...payload]);
          if (opcode === 0x1 || opcode === 0x0) {
            fragments.push(payload);
            if (fin) {
              onText(Buffer.concat(fragments).toString('utf8'));
              fragments = [];
            }
          }
        }
      };
      socket.on('data', (chunk) => {
        buffer = Buffer.concat([buffer, chunk]);
        parse();
      });
      socket.on('error', () => {});
      parse();
      resolve({ close: () => socket.destroy() });
    });
    req.end();
  });
}

async function until(what, check) {
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function main() {
  const wsUrl = new URL('/ws', REALTIME_URL);
  if (FALCON_TOKEN) wsUrl.searchParams.set('access_token', FALCON_TOKEN);
  const frames = [];
  const ws = await until('the gateway', () =>
    openWebSocket(wsUrl, (text) => frames.push(JSON.parse(text))).catch((err) => (log('gateway not reachable yet', { error: String(err) }), undefined)),
  );
  await until('the welcome frame', () => frames.some((f) => f.type === 'welcome'));

  const payload = { helmTest: randomUUID() };
  const posted = await until('ingest to accept', async () => {
    const res = await fetch(new URL('/api/messages', INGEST_URL), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify(payload),
    }).catch((err) => (log('ingest not reachable yet', { error: String(err) }), undefined));
    if (res?.status === 202) return res.json();
    if (res) log('ingest answered', { status: res.status, body: await res.text() });
    return undefined;
  });
  log('accepted', { id: posted.id, seq: posted.seq });

  await until('the message on the WebSocket', () =>
    frames.some((f) => f.type === 'message' && f.id === posted.id && JSON.stringify(f.payload) === JSON.stringify(payload)),
  );
  log('delivered on the WebSocket', { id: posted.id });
  ws.close();

  const stored = await until('the message in query', async () => {
    const res = await fetch(new URL(`/api/messages/${posted.id}`, QUERY_URL), { headers: auth }).catch(() => undefined);
    return res?.status === 200 ? res.json() : undefined;
  });
  if (JSON.stringify(stored.payload) !== JSON.stringify(payload) || stored.seq !== posted.seq) {
    throw new Error(`query returned a different message: ${JSON.stringify(stored)}`);
  }
  log('read back through query', { id: stored.id, seq: stored.seq });
}

main().then(
  () => process.exit(0),
  (err) => {
    log('round trip failed', { error: String(err?.stack ?? err) });
    process.exit(1);
  },
);
