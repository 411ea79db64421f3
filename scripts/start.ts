/**
 * `npm start`: the whole pipeline on this machine, one process per service, logs prefixed by
 * service, everything stopped on Ctrl-C.
 */
import { maskUrl } from '@falcon/shared';
import { DEFAULT_PORTS, ensureInfra, InfraError, startStack } from './stack.js';

const say = (line: string) => process.stdout.write(`\x1b[1m[falcon     ]\x1b[0m ${line}\n`);

try {
  const infra = await ensureInfra(process.env, say);
  say(`NATS ${maskUrl(infra.natsUrl)}, Postgres ${maskUrl(infra.databaseUrl)}`);
  const stack = await startStack({
    natsUrl: infra.natsUrl,
    databaseUrl: infra.databaseUrl,
    namespace: process.env['FALCON_NAMESPACE'],
    ports: DEFAULT_PORTS,
    logs: 'prefix',
  });
  say(`live page  http://127.0.0.1:${DEFAULT_PORTS.realtime}/`);
  say(`post       curl -X POST ${stack.urls.ingest}/api/messages -H 'content-type: application/json' -d '{"hello":"world"}'`);
  say(`list       curl ${stack.urls.query}/api/messages`);
  say('Ctrl-C stops everything');
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    say('stopping');
    await stack.stop();
    await infra.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  // A service that dies on its own takes the stack down with a clear message.
  for (const p of stack.processes) {
    void p.exited.then((code) => {
      if (!stopping) {
        say(`${p.name} exited (${code}); stopping the stack`);
        void stop();
      }
    });
  }
} catch (err) {
  say(err instanceof InfraError ? err.message : `failed to start: ${(err as Error).message}`);
  process.exit(1);
}
