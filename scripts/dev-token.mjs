// Prints a JWT (HS256, RFC 7519) for development: the Tiltfile hands it to the e2e suite and
// the dev values' page token is one of these. Never use the development secret elsewhere.
//   node scripts/dev-token.mjs <secret> [scopes] [lifetime seconds]
import { createHmac } from 'node:crypto';

const [secret, scope = 'messages:write messages:read messages:subscribe', lifetime = '86400'] = process.argv.slice(2);
if (!secret) {
  console.error('usage: node scripts/dev-token.mjs <secret> [scopes] [lifetime seconds]');
  process.exit(2);
}
const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const now = Math.floor(Date.now() / 1000);
const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'dev', scope, iat: now, exp: now + Number(lifetime) })}`;
// The key is the secret's UTF-8 bytes (the contract's rule for AUTH_JWT_SECRET).
console.log(`${unsigned}.${createHmac('sha256', Buffer.from(secret, 'utf8')).update(unsigned).digest('base64url')}`);
