import { createLogger, type Logger } from '../src/logger.js';

/** A debug-level logger whose JSON lines the test reads back, parsed, from `lines`. */
export function logSink(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return { logger, lines };
}
