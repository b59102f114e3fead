// checks/: what a check is and how one runs. This file holds the types and the entry points;
// each kind lives in its own file, joined in checks/registry.ts. See docs/checks.md.
// A check never throws into its caller and never shows credentials or query values.

import type { CheckState } from '../status.ts';
import type { PushLog } from './push.ts';

export type { CheckState };
export type CheckKind = 'http' | 'https' | 'tcp' | 'dns' | 'push';

/** An inclusive range of HTTP status codes; a single code has low === high. */
export interface StatusRange {
  readonly low: number;
  readonly high: number;
}

/** What every kind has. */
export interface CheckCommon {
  readonly name: string;
  readonly kind: CheckKind;
  /** For display: no credentials, query values replaced by '…' (?apikey=…). */
  readonly target: string;
  readonly timeoutMs: number;
  readonly intervalMs: number;
  /** When a critical check is down, the overall status is down. */
  readonly critical: boolean;
  /** Consecutive outcomes needed to change state (flap suppression, applied by status.ts). */
  readonly failuresToDown: number;
  readonly successesToUp: number;
  /** Passing but slower than this: degraded. null = never degraded for latency. */
  readonly degradedMs: number | null;
}

export interface HttpExpect {
  readonly status: readonly StatusRange[];
  readonly bodyContains: string | null;
  readonly json: { readonly path: string; readonly equals: unknown } | null;
}

export interface HttpCheck extends CheckCommon {
  readonly kind: 'http' | 'https';
  /** The real URL, with any credentials: never display it. */
  readonly url: string;
  readonly expect: HttpExpect;
  /** https: a certificate expiring within this many days makes the check degraded. */
  readonly certMinDays: number;
  /** https: chain and hostname not verified (the expiry rules still apply). */
  readonly insecure: boolean;
}

export interface TcpCheck extends CheckCommon {
  readonly kind: 'tcp';
  /** Without IPv6 brackets, as node:net takes it. */
  readonly host: string;
  readonly port: number;
}

export type DnsType = 'A' | 'AAAA' | 'CNAME' | 'MX' | 'TXT';

export interface DnsCheck extends CheckCommon {
  readonly kind: 'dns';
  readonly query: string;
  readonly type: DnsType;
  /** ip or ip:port ([v6]:port), as Resolver#setServers takes it; null = the system's resolvers. */
  readonly server: string | null;
  /** One of the answers must equal this. */
  readonly answer: string | null;
}

export interface PushCheck extends CheckCommon {
  readonly kind: 'push';
  /** Up while the last push said up and is younger than this. */
  readonly withinMs: number;
}

export type CheckDefinition = HttpCheck | TcpCheck | DnsCheck | PushCheck;

/** One run's raw outcome (before flap suppression). */
export interface Outcome {
  readonly state: CheckState;
  /** The latest raw outcome: 'HTTP 200', 'connected', 'ECONNREFUSED', 'timeout', '3 answers', … */
  readonly detail: string;
  /** One short sentence when state is not up, else null. */
  readonly reason: string | null;
  /** Time until the outcome was known, 0.1 ms precision. */
  readonly latencyMs: number;
  /** https only, ISO 8601: when the target's certificate expires. */
  readonly certExpiresAt?: string;
}

export interface RunContext {
  readonly pushes: PushLog;
  /** Date.now() at start-up: a push check without any push is up until withinMs after it. */
  readonly startedAtMs: number;
}

export interface CheckDefaults {
  /** CHECK_TIMEOUT_MS. */
  readonly timeoutMs: number;
  /** STATUS_INTERVAL_MS. */
  readonly intervalMs: number;
}

export { parseCheckDefinitions, parseCheckList } from './definition.ts';
export type { Push } from './push.ts';
export { PushLog, pushOutcome } from './push.ts';
export { CHECK_KINDS, runCheck } from './registry.ts';
export { redactUrl } from './url.ts';
