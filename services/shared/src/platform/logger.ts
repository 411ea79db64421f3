import { pino, type DestinationStream, type Logger, type LoggerOptions as PinoOptions } from 'pino';

export type { Logger };

export interface LoggerOptions {
  service: string;
  version: string;
  level: string;
  /** Where lines go; stdout unless a test captures them. */
  destination?: DestinationStream;
}

/**
 * Fields that may hold a credential wherever they appear in a log line (a request's headers,
 * an options object): pino replaces them before the line is written.
 */
export const REDACTED_PATHS = [
  'authorization',
  'password',
  'pass',
  'token',
  'secret',
  'accessToken',
  'access_token',
  '*.authorization',
  '*.password',
  '*.pass',
  '*.token',
  '*.secret',
  '*.headers.authorization',
  '*.headers.cookie',
  '*.headers["proxy-authorization"]',
];

/** A connection URL fit for a log line: any password replaced, the rest kept to say where. */
export function maskUrl(url: string): string {
  return url
    .split(',')
    .map((one) => {
      try {
        const parsed = new URL(one.trim());
        if (parsed.password) parsed.password = '***';
        for (const key of [...parsed.searchParams.keys()]) {
          if (/pass|token|secret|key/i.test(key)) parsed.searchParams.set(key, '***');
        }
        return parsed.toString();
      } catch {
        // Not a URL we can take apart: say nothing rather than risk printing a secret.
        return '[unparsable url]';
      }
    })
    .join(',');
}

/** pino JSON to stdout, every line tagged with the service and its version. */
export function createLogger(options: LoggerOptions): Logger {
  const settings: PinoOptions = {
    level: options.level,
    base: { service: options.service, version: options.version },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}

/** For tests and tools that must not print. */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}
