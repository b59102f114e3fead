// log.ts: one JSON object per line on stdout, in pino's shape, so that the tools that
// read pino logs (pino-pretty, Loki, Datadog) read ours. Knows nothing of HTTP or SSE.
//
// Writes are synchronous: process.stdout on a pipe or file is synchronous on Linux
// (Node docs, "A note on process I/O"), so nothing is lost when shutdown calls
// process.exit() right after its last line.

import { hostname } from 'node:os';

// pino's numeric levels: https://getpino.io/#/docs/api?id=levels
export const LOG_LEVELS = { debug: 20, info: 30, warn: 40, error: 50, silent: Infinity } as const;
export type LogLevelName = keyof typeof LOG_LEVELS;

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  isDebug: boolean;
}

export function createLogger(
  levelName: LogLevelName,
  write: (line: string) => void = (line) => process.stdout.write(line),
): Logger {
  const threshold = LOG_LEVELS[levelName];
  const base = `"pid":${process.pid},"hostname":${JSON.stringify(hostname())}`;
  const emit = (level: number, msg: string, fields?: LogFields): void => {
    if (level < threshold) return;
    let line = `{"level":${level},"time":${Date.now()},${base},"msg":${JSON.stringify(msg)}`;
    if (fields) {
      for (const key of Object.keys(fields)) {
        const value = fields[key] instanceof Error ? errorFields(fields[key]) : fields[key];
        line += `,${JSON.stringify(key)}:${JSON.stringify(value) ?? 'null'}`;
      }
    }
    write(line + '}\n');
  };
  return {
    debug: (msg, fields) => emit(LOG_LEVELS.debug, msg, fields),
    info: (msg, fields) => emit(LOG_LEVELS.info, msg, fields),
    warn: (msg, fields) => emit(LOG_LEVELS.warn, msg, fields),
    error: (msg, fields) => emit(LOG_LEVELS.error, msg, fields),
    isDebug: threshold <= LOG_LEVELS.debug,
  };
}

// pino's err serializer shape: {type, message, stack}.
function errorFields(err: Error): LogFields {
  return { type: err.name, message: err.message, stack: err.stack };
}
