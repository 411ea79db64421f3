import { pino, type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  service: string;
  version: string;
  level: string;
}

/** pino JSON to stdout, every line tagged with the service and its version. */
export function createLogger(options: LoggerOptions): Logger {
  return pino({
    level: options.level,
    base: { service: options.service, version: options.version },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/** For tests and tools that must not print. */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}
