import { connectNats, createLogger, falconNames, onShutdown, packageVersion } from '@falcon/shared';
import { loadConfig } from './config.js';
import { startRealtime } from './service.js';

const version = packageVersion(import.meta.url);
const config = loadConfig(process.env);
const log = createLogger({ service: 'realtime', version, level: config.logLevel });

const link = await connectNats({ url: config.natsUrl, name: 'falcon-realtime', log });
const service = await startRealtime(config, falconNames(config.namespace), link, log, version);

const shutdown = onShutdown({
  log,
  timeoutMs: config.shutdownTimeoutMs,
  steps: [{ name: 'nats', run: () => link.nc.drain() }, ...service.steps],
});
service.feed.done.then(
  () => void shutdown('live feed ended'),
  (err: unknown) => {
    log.error({ err }, 'live feed failed');
    void shutdown('live feed failed');
  },
);
