import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs on stdout. Nothing logged may carry a value, key or token; the redact list
 * is a second line of defence for field names that could hold one.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'vault' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['authorization', '*.authorization', 'value', '*.value', 'api_key', '*.api_key', 'token', '*.token', 'password', '*.password'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
