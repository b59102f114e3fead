// config.ts: turns the environment into one frozen, typed Config, once, at start-up, from
// one table of settings (SETTINGS) that --help and the README's table also come from.
// Every problem is collected and reported together, before anything listens.
// Never reads the environment after start-up and never logs: the caller decides.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { type CheckDefinition, parseCheckList } from './checks/index.ts';
import { LOG_LEVELS, type LogLevelName } from './log.ts';

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly intervalMs: number;
  /** From CHECKS only; CONFIG_FILE's are loaded beside them (config-file.ts). */
  readonly checks: readonly CheckDefinition[];
  readonly checkTimeoutMs: number;
  /** 0 = heartbeats off. */
  readonly heartbeatMs: number;
  readonly retryMs: number;
  readonly historySize: number;
  readonly maxClients: number;
  readonly maxBufferedBytes: number;
  /** '*' = any origin; a list = exactly these; empty list = no CORS headers. */
  readonly corsOrigins: '*' | readonly string[];
  /** null = no authentication. */
  readonly authToken: string | null;
  readonly shutdownGraceMs: number;
  readonly logLevel: LogLevelName;
  /** The service's name on the page, in badges and in snapshots. */
  readonly title: string;
  readonly configFile: string | null;
  /** null = history and announcements live in memory only. */
  readonly stateDir: string | null;
  /** null = no cap (the descriptor limit could not be read). */
  readonly maxConnections: number | null;
  readonly headersTimeoutMs: number;
  /** null = the write API is off. */
  readonly publishToken: string | null;
}

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

// setTimeout() treats larger delays as 1 ms (Node docs, setTimeout), so no duration may exceed it.
const MAX_TIMER_MS = 2_147_483_647;
// A bound on memory: each replay entry holds one serialized event.
const MAX_HISTORY_SIZE = 100_000;
// Descriptors kept back from MAX_CONNECTIONS for checks, state files, logs and /healthz.
const SPARE_DESCRIPTORS = 64;

type Env = Readonly<Record<string, string | undefined>>;

/** Reports one bad value: what is accepted; the variable and the value are added. */
type Refuse = (accepted: string) => void;
/** Reports a whole problem line (for values that must not be quoted, or lists of entries). */
type Report = (line: string) => void;

/**
 * One environment variable: its name, the Config field it fills, its default as --help and
 * the README show it, one help line, and its parser. `read` gets the raw value ('' when
 * unset) and returns the field's value; a bad value is refused and the default kept.
 */
interface Setting {
  readonly name: string;
  readonly key: keyof Config;
  readonly shown: string;
  readonly help: string;
  readonly read: (raw: string, refuse: Refuse, env: Env, report: Report) => unknown;
}

function integer(min: number, max: number, fallback: number, accepted?: string): Setting['read'] {
  return (raw, refuse) => {
    if (raw === '') return fallback;
    const value = /^\d{1,16}$/.test(raw) ? Number(raw) : Number.NaN;
    if (value >= min && value <= max) return value;
    refuse(accepted ?? `an integer from ${min} to ${max}`);
    return fallback;
  };
}

function token(name: string): Setting['read'] {
  return (raw, _refuse, env, report) => {
    if (raw === '') return null;
    // The token travels in an HTTP header (and for AUTH_TOKEN a query string or cookie):
    // visible ASCII only (RFC 9110 token68-like). Its value is never echoed, not even here.
    if (!/^[\x21-\x7e]+$/.test(raw)) {
      report(`config: ${name} must be visible ASCII characters (no spaces), got a value of ${raw.length} characters`);
      return null;
    }
    if (name === 'PUBLISH_TOKEN' && raw === env.AUTH_TOKEN) {
      report('config: PUBLISH_TOKEN must differ from AUTH_TOKEN (a reader must not be able to write)');
      return null;
    }
    return raw;
  };
}

const HEARTBEAT_ACCEPTED = `0 (off) or an integer from 100 to ${MAX_TIMER_MS}`;

/** The configuration: every variable, its default, its help line and its parser, once. */
export const SETTINGS: readonly Setting[] = [
  {
    name: 'PORT',
    key: 'port',
    shown: '8080',
    help: 'TCP port, 0-65535 (0 = any free port; the start-up log says which)',
    read: integer(0, 65535, 8080),
  },
  {
    name: 'HOST',
    key: 'host',
    shown: '0.0.0.0',
    help: 'listen address',
    read: (raw, refuse) => {
      if (/[\s\x00-\x1f\x7f]/.test(raw)) refuse('an address or host name without spaces');
      return raw || '0.0.0.0';
    },
  },
  {
    name: 'STATUS_INTERVAL_MS',
    key: 'intervalMs',
    shown: '10000',
    help: 'a snapshot to every stream this often; default interval of each check; >= 100',
    read: integer(100, MAX_TIMER_MS, 10_000),
  },
  {
    name: 'CHECKS',
    key: 'checks',
    shown: '(empty)',
    help: 'comma-separated [name=]url: http://, https://, tcp://host:port, dns://name; empty = host and service only',
    read: (raw, _refuse, env, report) => {
      // The defaults of every check; a bad value of theirs is reported on its own line.
      const ignore: Refuse = () => {};
      const defaults = {
        intervalMs: integer(100, MAX_TIMER_MS, 10_000)(env.STATUS_INTERVAL_MS ?? '', ignore, env, report) as number,
        timeoutMs: integer(1, MAX_TIMER_MS, 2000)(env.CHECK_TIMEOUT_MS ?? '', ignore, env, report) as number,
      };
      const { checks, problems } = parseCheckList(raw, defaults);
      for (const problem of problems) report(problem);
      return Object.freeze(checks);
    },
  },
  {
    name: 'CHECK_TIMEOUT_MS',
    key: 'checkTimeoutMs',
    shown: '2000',
    help: 'default per-check timeout, >= 1',
    read: integer(1, MAX_TIMER_MS, 2000),
  },
  {
    name: 'HEARTBEAT_MS',
    key: 'heartbeatMs',
    shown: '15000',
    help: 'a comment frame after this much silence on a stream; >= 100, or 0 = off',
    read: (raw, refuse, env, report) => {
      const value = integer(0, MAX_TIMER_MS, 15_000, HEARTBEAT_ACCEPTED)(raw, refuse, env, report) as number;
      if (value > 0 && value < 100) refuse(HEARTBEAT_ACCEPTED);
      return value;
    },
  },
  {
    name: 'RETRY_MS',
    key: 'retryMs',
    shown: '3000',
    help: 'the retry: sent to clients, >= 0',
    read: integer(0, MAX_TIMER_MS, 3000),
  },
  {
    name: 'HISTORY_SIZE',
    key: 'historySize',
    shown: '100',
    help: `events kept for Last-Event-ID replay, 0-${MAX_HISTORY_SIZE}`,
    read: integer(0, MAX_HISTORY_SIZE, 100),
  },
  {
    name: 'MAX_CLIENTS',
    key: 'maxClients',
    shown: '10000',
    help: 'open streams allowed at once, >= 1',
    read: integer(1, 10_000_000, 10_000),
  },
  {
    name: 'MAX_BUFFERED_BYTES',
    key: 'maxBufferedBytes',
    shown: '262144',
    help: 'a stream with more unsent bytes than this is dropped; >= 1024',
    read: integer(1024, 2 ** 40, 262_144),
  },
  {
    name: 'CORS_ORIGIN',
    key: 'corsOrigins',
    shown: '(empty)',
    help: 'empty = no CORS headers; * or a comma-separated list of exact origins',
    read: parseCorsOrigins,
  },
  {
    name: 'AUTH_TOKEN',
    key: 'authToken',
    shown: '(empty)',
    help: 'read token: /events, /status, /history, /metrics, badges need it (Bearer header, ?token= or cookie)',
    read: token('AUTH_TOKEN'),
  },
  {
    name: 'SHUTDOWN_GRACE_MS',
    key: 'shutdownGraceMs',
    shown: '5000',
    help: 'longest a graceful shutdown may take, >= 0',
    read: integer(0, MAX_TIMER_MS, 5000),
  },
  {
    name: 'LOG_LEVEL',
    key: 'logLevel',
    shown: 'info',
    help: 'debug, info, warn, error, silent',
    read: (raw, refuse) => {
      const level = raw || 'info';
      if (Object.hasOwn(LOG_LEVELS, level)) return level;
      refuse(`one of ${Object.keys(LOG_LEVELS).join(', ')}`);
      return 'info';
    },
  },
  {
    name: 'TITLE',
    key: 'title',
    shown: 'hostname',
    help: 'the service name on the page, in badges and snapshots',
    read: (raw, refuse) => {
      if (/[\x00-\x1f\x7f]/.test(raw) || raw.length > 100) refuse('at most 100 characters, no control characters');
      return raw || hostname();
    },
  },
  {
    name: 'CONFIG_FILE',
    key: 'configFile',
    shown: '(empty)',
    help: 'JSON file with checks (with options) and alerts; reloaded on SIGHUP and when it changes',
    read: (raw) => raw || null,
  },
  {
    name: 'STATE_DIR',
    key: 'stateDir',
    shown: '(empty)',
    help: 'empty = history lives in memory only; else a writable directory that keeps it across restarts',
    read: (raw) => raw || null,
  },
  {
    name: 'MAX_CONNECTIONS',
    key: 'maxConnections',
    shown: 'nofile − 64',
    help: 'open TCP connections allowed at once; default: the descriptor limit minus 64',
    read: (raw, refuse, env, report) => {
      if (raw !== '') return integer(1, 10_000_000, 0)(raw, refuse, env, report);
      return defaultMaxConnections(softDescriptorLimit(), env);
    },
  },
  {
    name: 'HEADERS_TIMEOUT_MS',
    key: 'headersTimeoutMs',
    shown: '10000',
    help: 'a connection must send a complete request head within this, >= 100',
    read: integer(100, MAX_TIMER_MS, 10_000),
  },
  {
    name: 'PUBLISH_TOKEN',
    key: 'publishToken',
    shown: '(empty)',
    help: 'empty = write API off; else its routes need "Authorization: Bearer <token>"',
    read: token('PUBLISH_TOKEN'),
  },
];

export const HELP = helpText();

function helpText(): string {
  const width = Math.max(...SETTINGS.map((s) => s.name.length)) + 2;
  const shownWidth = Math.max(...SETTINGS.map((s) => s.shown.length)) + 2;
  const rows = SETTINGS.map((s) => `  ${s.name.padEnd(width)}${s.shown.padEnd(shownWidth)}${s.help}`);
  return `status-stream: watches a service's health and streams it live to browsers over Server-Sent Events.

Usage: npm start [-- --help | --check-config]      (or, on Node >= 22.18: node server.ts [...])
  --check-config   validate the environment and CONFIG_FILE, print the problems or "ok", exit 0 or 2

Configuration (environment variables):
  ${'variable'.padEnd(width)}${'default'.padEnd(shownWidth)}meaning
${rows.join('\n')}

Durations are milliseconds, at most ${MAX_TIMER_MS}. A bad value stops start-up with exit code 2.
`;
}

/** Turns the environment into a frozen Config; throws ConfigError listing every problem. */
export function parseConfig(env: Env): Config {
  const problems: string[] = [];
  const report: Report = (line) => problems.push(line);
  const values: Record<string, unknown> = {};
  for (const setting of SETTINGS) {
    const raw = env[setting.name] ?? '';
    const refuse: Refuse = (accepted) => report(`config: ${setting.name} must be ${accepted}, got ${quote(raw)}`);
    values[setting.key] = setting.read(raw, refuse, env, report);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(values) as unknown as Config;
}

/** The soft limit on open files (RLIMIT_NOFILE), from /proc; null where it cannot be read. */
export function softDescriptorLimit(): number | null {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (line === null || line[1] === 'unlimited') return null;
    return Number(line[1]);
  } catch {
    return null;
  }
}

/**
 * Below the descriptor limit by SPARE_DESCRIPTORS, so accepting never runs the process out
 * of descriptors; at least MAX_CLIENTS + 16 when the limit allows it. No limit known: no cap.
 */
export function defaultMaxConnections(nofile: number | null, env: Env): number | null {
  if (nofile === null) return null;
  const clients = Number(env.MAX_CLIENTS) || 10_000;
  const cap = nofile - SPARE_DESCRIPTORS;
  return Math.max(1, clients + 16 <= nofile - 16 ? Math.max(cap, clients + 16) : cap);
}

function parseCorsOrigins(value: string, refuse: Refuse): '*' | readonly string[] {
  const entries = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (entries.length === 1 && entries[0] === '*') return '*';
  const origins: string[] = [];
  for (const entry of entries) {
    let origin = '';
    try {
      origin = new URL(entry).origin;
    } catch {
      /* reported below */
    }
    // An origin is scheme://host[:port] and nothing else (RFC 6454 §6.1), compared exactly.
    if (origin !== entry || origin === 'null')
      refuse('* or a comma-separated list of origins like https://example.com');
    else origins.push(origin);
  }
  return Object.freeze(origins);
}

// Quote a user-given value for an error line: JSON escaping keeps control characters
// from reaching the terminal; long values are cut.
function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? value.slice(0, 80) + '…' : value);
}

/** The config as it is safe to log: the token and any credentials in check urls are left out. */
export function redactedConfig(config: Config): Record<string, unknown> {
  return {
    ...config,
    // A check's url may hold credentials; its target never does.
    checks: config.checks.map(({ name, kind, target }) => ({ name, kind, target })),
    authToken: config.authToken === null ? null : '[redacted]',
    publishToken: config.publishToken === null ? null : '[redacted]',
  };
}
