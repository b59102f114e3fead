// config.ts: turns the environment into one frozen, typed Config, once, at start-up.
// Every problem is collected and reported together, before anything listens (SPEC §2).
// Never reads the environment after start-up and never logs: the caller decides.

import { LOG_LEVELS, type LogLevelName } from './log.ts';

export interface CheckSpec {
  readonly name: string;
  readonly kind: 'http' | 'tcp';
  /** What snapshots show: the URL normalized by WHATWG URL parsing, credentials removed. */
  readonly target: string;
  /** What an http check requests: the URL, with any credentials. */
  readonly url: string;
  /** For tcp checks. */
  readonly host: string;
  readonly port: number;
}

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly intervalMs: number;
  readonly checks: readonly CheckSpec[];
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
// A bound on memory: each history entry holds one serialized snapshot.
const MAX_HISTORY_SIZE = 100_000;

export const HELP = `status-stream: streams a service's live status to browsers over Server-Sent Events.

Usage: node server.ts          (Node >= 22.18; on Node 20: node --import tsx server.ts)

Configuration (environment variables):
  variable            default   meaning / valid values
  PORT                8080      TCP port, integer 0-65535 (0 = pick a free port; the start-up log says which)
  HOST                0.0.0.0   listen address
  STATUS_INTERVAL_MS  10000     time between check rounds, integer >= 100
  CHECKS              (empty)   comma-separated [name=]url, url is http://..., https://... or tcp://host:port;
                                name defaults to host:port; names are unique; empty = host and service only
  CHECK_TIMEOUT_MS    2000      per-check timeout, integer >= 1
  HEARTBEAT_MS        15000     a comment frame after this much silence on a stream; integer >= 100, or 0 = off
  RETRY_MS            3000      the retry: sent to clients, integer >= 0
  HISTORY_SIZE        100       events kept for Last-Event-ID replay, integer 0-${MAX_HISTORY_SIZE}
  MAX_CLIENTS         10000     open streams allowed at once, integer >= 1
  MAX_BUFFERED_BYTES  262144    a stream with more unsent bytes than this is dropped; integer >= 1024
  CORS_ORIGIN         (empty)   empty = no CORS headers; * or a comma-separated list of exact origins
  AUTH_TOKEN          (empty)   if set, /events, /status and /metrics need "Authorization: Bearer <token>" or ?token=<token>
  SHUTDOWN_GRACE_MS   5000      longest a graceful shutdown may take, integer >= 0
  LOG_LEVEL           info      debug, info, warn, error, silent

Durations are milliseconds, at most ${MAX_TIMER_MS}. A bad value stops start-up with exit code 2.
Routes: / (page), /events (SSE), /status (JSON), /healthz, /readyz, /metrics.
`;

type Env = Readonly<Record<string, string | undefined>>;

export function parseConfig(env: Env): Config {
  const problems: string[] = [];
  const fail = (name: string, accepted: string, given: string): void => {
    problems.push(`config: ${name} must be ${accepted}, got ${quote(given)}`);
  };

  const integer = (name: string, fallback: number, min: number, max: number, accepted?: string): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
    if (value >= min && value <= max) return value;
    fail(name, accepted ?? `an integer from ${min} to ${max}`, raw);
    return fallback;
  };

  const port = integer('PORT', 8080, 0, 65535);
  const intervalMs = integer('STATUS_INTERVAL_MS', 10_000, 100, MAX_TIMER_MS);
  const checkTimeoutMs = integer('CHECK_TIMEOUT_MS', 2000, 1, MAX_TIMER_MS);
  const heartbeatMs = integer('HEARTBEAT_MS', 15_000, 0, MAX_TIMER_MS, `0 (off) or an integer from 100 to ${MAX_TIMER_MS}`);
  if (heartbeatMs > 0 && heartbeatMs < 100) fail('HEARTBEAT_MS', `0 (off) or an integer from 100 to ${MAX_TIMER_MS}`, env.HEARTBEAT_MS ?? '');
  const retryMs = integer('RETRY_MS', 3000, 0, MAX_TIMER_MS);
  const historySize = integer('HISTORY_SIZE', 100, 0, MAX_HISTORY_SIZE);
  const maxClients = integer('MAX_CLIENTS', 10_000, 1, 10_000_000);
  const maxBufferedBytes = integer('MAX_BUFFERED_BYTES', 262_144, 1024, 2 ** 40);
  const shutdownGraceMs = integer('SHUTDOWN_GRACE_MS', 5000, 0, MAX_TIMER_MS);

  const host = env.HOST || '0.0.0.0';
  // eslint-disable-next-line no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(host)) fail('HOST', 'an address or host name without spaces', host);

  const logLevelRaw = env.LOG_LEVEL || 'info';
  const logLevel = (Object.hasOwn(LOG_LEVELS, logLevelRaw) ? logLevelRaw : 'info') as LogLevelName;
  if (logLevel !== logLevelRaw) fail('LOG_LEVEL', `one of ${Object.keys(LOG_LEVELS).join(', ')}`, logLevelRaw);

  const checks = parseChecks(env.CHECKS ?? '', problems);
  const corsOrigins = parseCorsOrigins(env.CORS_ORIGIN ?? '', fail);

  let authToken: string | null = env.AUTH_TOKEN || null;
  // The token travels in an HTTP header and a query string: visible ASCII only (RFC 9110
  // token68-like). Its value is never echoed, not even in this error.
  if (authToken !== null && !/^[\x21-\x7e]+$/.test(authToken)) {
    problems.push(`config: AUTH_TOKEN must be visible ASCII characters (no spaces), got a value of ${authToken.length} characters`);
    authToken = null;
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({
    port, host, intervalMs, checks, checkTimeoutMs, heartbeatMs, retryMs, historySize,
    maxClients, maxBufferedBytes, corsOrigins, authToken, shutdownGraceMs, logLevel,
  });
}

// CHECKS: comma-separated [name=]url. The name is everything before the "=" that directly
// precedes the scheme, so a URL may itself contain "=" (in its query) and a name may too.
const SCHEME = /^(?:https?|tcp):\/\//i;
const NAMED_ENTRY = /^(.*?)=((?:https?|tcp):\/\/.*)$/is;

export function parseChecks(value: string, problems: string[]): readonly CheckSpec[] {
  const checks: CheckSpec[] = [];
  const names = new Set<string>();
  for (const rawEntry of value.split(',')) {
    const entry = rawEntry.trim();
    if (entry === '') continue; // tolerate "a=...,", and spaces after commas
    const bad = (accepted: string): void => {
      problems.push(`config: CHECKS entries must be ${accepted}, got ${quote(entry)}`);
    };
    const match = SCHEME.test(entry) ? [entry, undefined, entry] : NAMED_ENTRY.exec(entry);
    if (!match) { bad('[name=]url with an http://, https:// or tcp://host:port url'); continue; }
    let url: URL;
    try { url = new URL(match[2] as string); } catch { bad('[name=]url with a valid url'); continue; }
    const kind = url.protocol === 'tcp:' ? 'tcp' : 'http';
    if (kind === 'tcp' && (url.port === '' || (url.pathname !== '' && url.pathname !== '/') || url.search !== '')) {
      bad('tcp://host:port, with a port and nothing after it'); continue;
    }
    if (url.hostname === '') { bad('a url with a host'); continue; }
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const name = match[1] ?? `${url.hostname}:${port}`;
    // Names become Prometheus label values and table rows: printable, no comma (the separator).
    // eslint-disable-next-line no-control-regex
    if (name === '' || /[\x00-\x1f\x7f]/.test(name)) { bad('a name without control characters'); continue; }
    if (names.has(name)) { bad(`unique names ("${name}" is used twice)`); continue; }
    names.add(name);
    const href = url.href;
    url.username = '';
    url.password = '';
    const target = kind === 'tcp' ? `tcp://${url.host}` : url.href;
    checks.push(Object.freeze({ name, kind, target, url: href, host: hostname, port }));
  }
  return Object.freeze(checks);
}

function parseCorsOrigins(value: string, fail: (name: string, accepted: string, given: string) => void): '*' | readonly string[] {
  const entries = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (entries.length === 1 && entries[0] === '*') return '*';
  const origins: string[] = [];
  for (const entry of entries) {
    let origin = '';
    try { origin = new URL(entry).origin; } catch { /* reported below */ }
    // An origin is scheme://host[:port] and nothing else (RFC 6454 §6.1), compared exactly.
    if (origin !== entry || origin === 'null') fail('CORS_ORIGIN', '* or a comma-separated list of origins like https://example.com', entry);
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
  };
}
