// status.ts: the status model. It runs the checks (HTTP, TCP), reads the host and the
// service, turns one round into one snapshot, and owns the one shared poller that runs a
// round per interval however many streams are open.
// It never writes to a client: snapshots go to whoever the poller was given.

import { connect } from 'node:net';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { CheckSpec } from './config.ts';
import type { Logger } from './log.ts';

export type OverallStatus = 'up' | 'degraded' | 'down';

/** A check's state, and the overall status: `ok` in results means `state !== 'down'`. */
export type CheckState = 'up' | 'degraded' | 'down';

/** A change of a check's state (or of the overall status: `check` is null). */
export interface Transition {
  /** ISO 8601. */
  readonly time: string;
  readonly check: string | null;
  /** null for a check's first state after start-up. */
  readonly from: CheckState | null;
  readonly to: CheckState;
  /** One short sentence when `to` is not up. */
  readonly reason: string | null;
}

export interface CheckResult {
  readonly name: string;
  readonly kind: 'http' | 'tcp';
  readonly target: string;
  readonly ok: boolean;
  /** Time until the outcome was known, ms, 0.1 ms precision. */
  readonly latencyMs: number;
  /** `HTTP <code>`, `connected`, or what went wrong (`ECONNREFUSED`, `timeout`, …). */
  readonly detail: string;
}

export interface Snapshot {
  readonly status: OverallStatus;
  readonly time: string;
  readonly checks: readonly CheckResult[];
  readonly host: {
    readonly hostname: string;
    readonly loadavg: readonly number[];
    readonly memTotalBytes: number;
    readonly memFreeBytes: number;
    readonly uptimeSeconds: number | null;
  };
  readonly service: {
    readonly version: string;
    readonly uptimeSeconds: number;
    readonly clients: number;
    /** null when it could not be read (descriptors exhausted). */
    readonly rssBytes: number | null;
    readonly eventLoopDelayMs: number;
  };
}

/** A snapshot with its one serialization and when it was taken. */
export interface Latest {
  readonly snapshot: Snapshot;
  readonly json: string;
  /** performance.now() when the round ended. */
  readonly atMs: number;
}

export function overallStatus(checks: readonly CheckResult[]): OverallStatus {
  const failing = checks.filter((c) => !c.ok).length;
  if (failing === 0) return 'up';
  return failing === checks.length ? 'down' : 'degraded';
}

const USER_AGENT = 'status-stream';

/** Runs one check, bounded by `timeoutMs`. Never rejects: a failure is a result. */
export function runCheck(spec: CheckSpec, timeoutMs: number): Promise<CheckResult> {
  const startMs = performance.now();
  const attempt = spec.kind === 'http' ? httpCheck(spec.url, timeoutMs) : tcpCheck(spec.host, spec.port, timeoutMs);
  return attempt.then(({ ok, detail }) => ({
    name: spec.name,
    kind: spec.kind,
    target: spec.target,
    ok,
    latencyMs: Math.round((performance.now() - startMs) * 10) / 10,
    detail,
  }));
}

interface Outcome {
  ok: boolean;
  detail: string;
}

// GET, ok for 200-399. Redirects are not followed (node:http never does), so a 302 to a
// broken page still counts as up: the target answered. The body is not read: the
// response is destroyed as soon as its status line is in.
function httpCheck(url: string, timeoutMs: number): Promise<Outcome> {
  const client = url.startsWith('https:') ? https : http;
  return bounded(timeoutMs, (settle) => {
    // agent: false = a fresh connection each time: a pooled one could be half-dead and
    // would measure the pool, not the target.
    const req = client.get(url, { agent: false, headers: { 'user-agent': USER_AGENT, accept: '*/*' } }, (res) => {
      const code = res.statusCode ?? 0;
      res.on('error', ignore);
      res.destroy();
      settle({ ok: code >= 200 && code <= 399, detail: `HTTP ${code}` });
    });
    req.on('error', (err) => settle({ ok: false, detail: errorDetail(err) }));
    return req;
  });
}

// Ok when a TCP connection opens within the timeout; it is closed at once.
function tcpCheck(host: string, port: number, timeoutMs: number): Promise<Outcome> {
  return bounded(timeoutMs, (settle) => {
    const socket = connect({ host, port });
    socket.once('connect', () => settle({ ok: true, detail: 'connected' }));
    socket.on('error', (err) => settle({ ok: false, detail: errorDetail(err) }));
    return socket;
  });
}

/**
 * Runs `attempt`, which reports through `settle`; after `timeoutMs` the outcome is
 * `timeout`. The first outcome wins, and the attempt's request or socket is destroyed.
 */
function bounded(timeoutMs: number, attempt: (settle: (outcome: Outcome) => void) => { destroy(): void }): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    // Assigned before any outcome: node:http and node:net report them asynchronously.
    let handle!: { destroy(): void };
    const settle = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      handle.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => settle({ ok: false, detail: 'timeout' }), timeoutMs);
    handle = attempt(settle);
  });
}

function errorDetail(err: Error & { code?: string }): string {
  return typeof err.code === 'string' ? err.code : err.message;
}

function ignore(): void {}

// The service's own event-loop delay: a libuv timer every LOOP_DELAY_RESOLUTION_MS records
// how long after its due time it ran. The histogram records the whole interval (an idle
// loop reads about 20 ms here), so the resolution is subtracted. Snapshots report the mean
// since the previous round.
const LOOP_DELAY_RESOLUTION_MS = 20;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
loopDelay.enable();

/**
 * The process's resident memory, or null when it cannot be read: Node reads /proc/self/stat,
 * which fails with EMFILE when descriptors have run out, and that must not end the process.
 */
export function residentMemoryBytes(): number | null {
  try {
    return process.memoryUsage.rss();
  } catch {
    return null;
  }
}

/** Mean event-loop delay since the last round, in ms, 0.01 ms precision. */
export function eventLoopDelayMs(): number {
  const meanMs = loopDelay.mean / 1e6 - LOOP_DELAY_RESOLUTION_MS;
  return Number.isFinite(meanMs) ? Math.max(0, Math.round(meanMs * 100) / 100) : 0;
}

// os.uptime() reads /proc/uptime and throws when no descriptor is left (EMFILE): a reading
// that fails is null, never a crash.
function hostReading(): Snapshot['host'] {
  let uptimeSeconds: number | null = null;
  try {
    uptimeSeconds = Math.round(os.uptime());
  } catch {
    // left null
  }
  return {
    hostname: os.hostname(),
    loadavg: os.loadavg().map((n) => Math.round(n * 100) / 100),
    memTotalBytes: os.totalmem(),
    memFreeBytes: os.freemem(),
    uptimeSeconds,
  };
}

export interface CheckStats {
  ok: number;
  fail: number;
  last: CheckResult | null;
}

export interface PollerOptions {
  readonly checks: readonly CheckSpec[];
  readonly intervalMs: number;
  readonly checkTimeoutMs: number;
  readonly version: string;
  /** Open streams, for the snapshot's service.clients. */
  readonly clients: () => number;
  /** Receives every snapshot, once, as it is taken. */
  readonly onSnapshot: (latest: Latest) => void;
  readonly log: Logger;
}

/**
 * The shared poller: one per process. While active it runs a round per interval: the
 * next round starts at the later of (previous start + interval) and (previous end), so
 * rounds never overlap. `round()` called while a round runs joins that round.
 */
export class StatusPoller {
  readonly #options: PollerOptions;
  readonly checkStats: Map<string, CheckStats>;
  rounds = 0;
  #latest: Latest | null = null;
  #inFlight: Promise<Latest> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #active = false;
  /** performance.now() when the latest round started: the next starts one interval later. */
  #lastStartMs = 0;

  constructor(options: PollerOptions) {
    this.#options = options;
    this.checkStats = new Map(options.checks.map((c) => [c.name, { ok: 0, fail: 0, last: null }]));
  }

  get active(): boolean {
    return this.#active;
  }

  /** The latest snapshot if it is younger than one interval, else null. */
  fresh(): Latest | null {
    const latest = this.#latest;
    return latest !== null && performance.now() - latest.atMs < this.#options.intervalMs ? latest : null;
  }

  /**
   * Starts polling (the first stream opened) or keeps it going: with no fresh snapshot a
   * round starts now (or the running one is joined), else the next is timed from the last.
   */
  start(): void {
    const wasActive = this.#active;
    this.#active = true;
    if (this.#inFlight !== null) return; // the running round schedules the next
    if (this.fresh() === null) void this.round();
    else if (!wasActive) this.#schedule(this.#lastStartMs + this.#options.intervalMs - performance.now());
  }

  /** Stops polling (the last stream closed): no further rounds; a running one completes. */
  stop(): void {
    this.#active = false;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** Runs one round now, or joins the one running. */
  round(): Promise<Latest> {
    if (this.#inFlight !== null) return this.#inFlight;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const startMs = performance.now();
    this.#inFlight = this.#runRound().finally(() => {
      this.#inFlight = null;
      this.#lastStartMs = startMs;
      if (this.#active) this.#schedule(startMs + this.#options.intervalMs - performance.now());
    });
    return this.#inFlight;
  }

  #schedule(delayMs: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.round();
    }, Math.max(0, delayMs));
  }

  async #runRound(): Promise<Latest> {
    const { checks, checkTimeoutMs, log } = this.#options;
    const results = await Promise.all(checks.map((spec) => runCheck(spec, checkTimeoutMs)));
    this.rounds++;
    for (const result of results) {
      const stats = this.checkStats.get(result.name);
      if (stats) {
        if (result.ok) stats.ok++;
        else stats.fail++;
        stats.last = result;
      }
      if (!result.ok) log.warn('check failed', { check: result.name, target: result.target, detail: result.detail, latencyMs: result.latencyMs });
    }
    const snapshot = this.#snapshot(results);
    const latest: Latest = { snapshot, json: JSON.stringify(snapshot), atMs: performance.now() };
    this.#latest = latest;
    try {
      this.#options.onSnapshot(latest);
    } catch (err) {
      // A failing subscriber must not stop the poller: the next round still runs.
      log.error('snapshot subscriber failed', { err });
    }
    return latest;
  }

  #snapshot(checks: readonly CheckResult[]): Snapshot {
    const delayMs = eventLoopDelayMs();
    loopDelay.reset();
    return {
      status: overallStatus(checks),
      time: new Date().toISOString(),
      checks,
      host: hostReading(),
      service: {
        version: this.#options.version,
        uptimeSeconds: Math.round(process.uptime()),
        clients: this.#options.clients(),
        rssBytes: residentMemoryBytes(),
        eventLoopDelayMs: delayMs,
      },
    };
  }
}
