/**
 * `npm run load`: sustained POST load on ingest with autocannon, e.g. to watch the persister
 * scale on a cluster. Bounded in time; stops by itself.
 *   npm run load -- --url http://127.0.0.1:8081 --duration 60 --connections 64 [--rate 2000]
 * With auth on, FALCON_TOKEN (messages:write) is sent as the bearer token; without it every
 * request would be a cheap 401 and nothing would reach the persister.
 */
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8081' },
    duration: { type: 'string', default: '30' },
    connections: { type: 'string', default: '32' },
    rate: { type: 'string' },
  },
});

const token = process.env['FALCON_TOKEN'];
const result = await autocannon({
  url: `${values.url}/api/messages`,
  method: 'POST',
  headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
  body: JSON.stringify({ text: 'load', at: new Date().toISOString(), pad: 'x'.repeat(100) }),
  duration: Number(values.duration),
  connections: Number(values.connections),
  overallRate: values.rate ? Number(values.rate) : undefined,
});
process.stdout.write(autocannon.printResult(result));
const accepted = result.statusCodeStats?.['202']?.count ?? 0;
console.log(`accepted ${accepted} of ${result.requests.total} (${Math.round(accepted / result.duration)}/s), non-2xx ${result.non2xx}, errors ${result.errors}`);
