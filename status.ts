// status.ts: the status model. It runs each check on its own schedule, turns outcomes into
// states (flap suppression), derives the overall status, notices transitions, and every
// interval builds one snapshot from each check's latest result, serialized once.
// It never writes to a client and never formats a frame: snapshots go to whoever it was given.

import os from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { type CheckDefinition, type CheckKind, type Outcome, type RunContext, runCheck } from './checks/index.ts';
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

export interface Uptime {
  readonly '24h': number | null;
  readonly '7d': number | null;
  readonly '30d': number | null;
}

export interface CheckResult {
  readonly name: string;
  readonly kind: CheckKind;
  readonly target: string;
  /** state !== 'down'. */
  readonly ok: boolean;
  readonly state: CheckState;
  /** Why the state is not up; null when up. */
  readonly reason: string | null;
  /** When the state last changed (ISO 8601). */
  readonly since: string;
  /** Time until the latest outcome was known, ms, 0.1 ms precision. */
  readonly latencyMs: number;
  /** The latest outcome: `HTTP 200`, `connected`, `ECONNREFUSED`, `timeout`, … */
  readonly detail: string;
  readonly certExpiresAt?: string;
  readonly uptime: Uptime;
}

export interface Announcement {
  readonly text: string;
  readonly level: 'info' | 'warning' | 'critical';
  readonly maintenance: boolean;
  readonly time: string;
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
    /** null when it could not be read (descriptors exhausted). */
    readonly uptimeSeconds: number | null;
  };
  readonly service: {
    readonly title: string;
    readonly version: string;
    readonly uptimeSeconds: number;
    readonly clients: number;
    /** null when it could not be read (descriptors exhausted). */
    readonly rssBytes: number | null;
    readonly eventLoopDelayMs: number;
    /** How often snapshots come, and the heartbeat: a page tells "stale" from these. */
    readonly intervalMs: number;
    readonly heartbeatMs: number;
  };
  readonly announcement: Announcement | null;
}

/** A snapshot with its one serialization and when it was taken. */
export interface Latest {
  readonly snapshot: Snapshot;
  readonly json: string;
  /** performance.now() when it was built. */
  readonly atMs: number;
}

/**
 * The overall status: down when a critical check is down or every check is (at least one);
 * degraded when any check is not up; else up (also with no checks).
 */
export function overallStatus(
  checks: ReadonlyArray<{ readonly state: CheckState; readonly critical?: boolean }>,
): OverallStatus {
  let down = 0;
  let notUp = 0;
  for (const check of checks) {
    if (check.state === 'down') {
      if (check.critical) return 'down';
      down++;
    }
    if (check.state !== 'up') notUp++;
  }
  if (checks.length > 0 && down === checks.length) return 'down';
  return notUp > 0 ? 'degraded' : 'up';
}

/** Applies flap suppression: the state a check holds after `outcome`. */
export function nextState(
  current: CheckState | null,
  outcome: CheckState,
  streak: number,
  def: { readonly failuresToDown: number; readonly successesToUp: number },
): CheckState {
  if (current === null || current === outcome) return outcome;
  // Toward down needs failuresToDown outcomes in a row, away from it successesToUp; between
  // up and degraded the latest outcome decides at once.
  if (outcome === 'down') return streak >= def.failuresToDown ? 'down' : current;
  if (current === 'down') return streak >= def.successesToUp ? outcome : current;
  return outcome;
}

// The service's own event-loop delay: a libuv timer every LOOP_DELAY_RESOLUTION_MS records
// how long after its due time it ran. The histogram records the whole interval (an idle
// loop reads about 100 ms here), so the resolution is subtracted. Snapshots report the mean
// since the previous snapshot. Each sample wakes an idle loop: at 20 ms those wakes were
// up to half of an idle service's CPU (docs/decisions.md, event-loop delay every 100 ms).
const LOOP_DELAY_RESOLUTION_MS = 100;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
loopDelay.enable();

/** Mean event-loop delay since the last snapshot, in ms, 0.01 ms precision. */
export function eventLoopDelayMs(): number {
  const meanMs = loopDelay.mean / 1e6 - LOOP_DELAY_RESOLUTION_MS;
  return Number.isFinite(meanMs) ? Math.max(0, Math.round(meanMs * 100) / 100) : 0;
}

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

/** What /metrics reads of each check. */
export interface CheckStats {
  ok: number;
  fail: number;
  last: CheckResult | null;
}

/** Where results go besides snapshots: history (uptime) and transitions; both optional. */
export interface HistorySink {
  record(check: string, state: CheckState, latencyMs: number | null, atMs: number): void;
  uptime(check: string, nowMs: number): Uptime;
  forget(check: string): void;
}

export interface PollerOptions {
  readonly checks: readonly CheckDefinition[];
  readonly intervalMs: number;
  readonly heartbeatMs: number;
  readonly title: string;
  readonly version: string;
  readonly context: RunContext;
  /** Open streams, for the snapshot's service.clients. */
  readonly clients: () => number;
  readonly announcement?: () => Announcement | null;
  readonly history?: HistorySink;
  /** Receives every snapshot, once, as it is built. */
  readonly onSnapshot: (latest: Latest) => void;
  /** Receives every transition, checks' and the overall status's, in order. */
  readonly onTransition?: (transition: Transition, overall: OverallStatus) => void;
  readonly log: Logger;
}

/** The first runs of checks that start together are spread over this much (or their interval, if shorter). */
const FIRST_RUNS_SPREAD_MS = 1000;
/**
 * Spread checks start in steps of this much, together within a step: a run alone costs more CPU than
 * one of a batch, and 250 ms measured the CPU of running in step with a tenth of its latency error
 * (docs/decisions.md, "Checks that start together are spread over their interval").
 */
const SPREAD_STEP_MS = 250;

function spreadStep(ms: number): number {
  return Math.floor(ms / SPREAD_STEP_MS) * SPREAD_STEP_MS;
}

const NO_UPTIME: Uptime = Object.freeze({ '24h': null, '7d': null, '30d': null });

/** One check's schedule and state. */
class Tracker {
  def: CheckDefinition;
  state: CheckState | null = null;
  reason: string | null = null;
  since = new Date().toISOString();
  /** Outcomes in a row that disagree with the state held. */
  streak = 0;
  latest: Outcome | null = null;
  running = false;
  /** performance.now() when the latest run started. */
  startedMs = 0;
  timer: NodeJS.Timeout | null = null;
  /** Until its second run is scheduled: the performance.now() of a run at its place in the spread. */
  slotMs: number | null = null;
  removed = false;
  readonly stats: CheckStats = { ok: 0, fail: 0, last: null };
  constructor(def: CheckDefinition) {
    this.def = def;
  }
}

/**
 * The poller: one per process, from start-up to shutdown, streams or not. Each check runs
 * every intervalMs, start to start, never overlapping itself (a slow one delays only its
 * own next run). Every STATUS_INTERVAL_MS one snapshot is built from the latest results.
 */
export class StatusPoller {
  readonly #options: PollerOptions;
  readonly #trackers = new Map<string, Tracker>();
  /** Snapshots built (status_check_rounds_total). */
  rounds = 0;
  /** How long the latest snapshot took to build and serialize, ms (status_snapshot_build_seconds). */
  lastBuildMs = 0;
  #overall: OverallStatus | null = null;
  #latest: Latest | null = null;
  #waiting: Array<(latest: Latest) => void> = [];
  #snapshotTimer: NodeJS.Timeout | null = null;
  #firstTimer: NodeJS.Timeout | null = null;
  #running = false;

  constructor(options: PollerOptions) {
    this.#options = options;
    for (const def of options.checks) this.#trackers.set(def.name, new Tracker(def));
  }

  /** Per check, in definition order, for /metrics. */
  get checkStats(): ReadonlyMap<string, CheckStats> {
    return new Map([...this.#trackers].map(([name, t]) => [name, t.stats]));
  }

  get definitions(): readonly CheckDefinition[] {
    return [...this.#trackers.values()].map((t) => t.def);
  }

  /** The latest snapshot, or null before the first. */
  get latest(): Latest | null {
    return this.#latest;
  }

  /** The latest snapshot; before the first exists, waits for it. */
  snapshot(): Promise<Latest> {
    if (this.#latest !== null) return Promise.resolve(this.#latest);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /**
   * Starts every check's schedule, spread (see #spread); the first snapshot comes when each has a
   * result, at the latest after the spread and the longest timeout.
   */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const trackers = [...this.#trackers.values()];
    const spreadMs = this.#spread(trackers);
    const longest = Math.max(0, ...trackers.map((t) => t.def.timeoutMs));
    this.#firstTimer = setTimeout(() => this.#publishFirst(), trackers.length === 0 ? 0 : spreadMs + longest + 50);
  }

  /**
   * Starts checks that begin together so that they do not run together: in a batch of n, the i-th
   * (0-based) runs first at i/n of FIRST_RUNS_SPREAD_MS (or of its interval, if shorter), and from its
   * second run on at i/n of its interval, the slot it keeps; both rounded down to a SPREAD_STEP_MS.
   * Run in step, 1,000 checks measured their own queue: 40-77 ms median latency against a target
   * that answers in under 1 ms (docs/decisions.md). Returns how long the first runs take to start.
   */
  #spread(trackers: readonly Tracker[]): number {
    const now = performance.now();
    const n = trackers.length;
    let longestMs = 0;
    trackers.forEach((tracker, i) => {
      const firstMs = spreadStep((Math.min(FIRST_RUNS_SPREAD_MS, tracker.def.intervalMs) * i) / n);
      tracker.slotMs = now + spreadStep((tracker.def.intervalMs * i) / n);
      longestMs = Math.max(longestMs, firstMs);
      if (firstMs === 0) void this.#run(tracker);
      else tracker.timer = setTimeout(() => void this.#run(tracker), firstMs);
    });
    return longestMs;
  }

  /** Stops every timer; runs under way finish but schedule nothing. */
  stop(): void {
    this.#running = false;
    for (const tracker of this.#trackers.values()) this.#cancel(tracker);
    if (this.#snapshotTimer !== null) clearInterval(this.#snapshotTimer);
    if (this.#firstTimer !== null) clearTimeout(this.#firstTimer);
    this.#snapshotTimer = null;
    this.#firstTimer = null;
  }

  /**
   * A reload: checks that survive by name keep their state and schedule (with the new
   * definition from their next run), new ones start, removed ones stop and are forgotten.
   */
  setChecks(defs: readonly CheckDefinition[]): void {
    const next = new Map<string, Tracker>();
    for (const def of defs) {
      const tracker = this.#trackers.get(def.name) ?? new Tracker(def);
      const newInterval = tracker.timer !== null && tracker.def.intervalMs !== def.intervalMs;
      tracker.def = def;
      next.set(def.name, tracker);
      // A new interval counts from the latest start: a shortened one is not waited out at its old length.
      if (newInterval) {
        this.#cancel(tracker);
        const delayMs = Math.max(0, tracker.startedMs + def.intervalMs - performance.now());
        tracker.timer = setTimeout(() => void this.#run(tracker), delayMs);
      }
    }
    for (const [name, tracker] of this.#trackers) {
      if (next.has(name)) continue;
      tracker.removed = true;
      this.#cancel(tracker);
      this.#options.history?.forget(name);
    }
    const added = [...next.values()].filter((t) => !this.#trackers.has(t.def.name));
    this.#trackers.clear();
    for (const [name, tracker] of next) this.#trackers.set(name, tracker);
    if (this.#running) this.#spread(added);
    // Removing the only failing check brings the overall status back up: that is a transition too,
    // and without it the next failure would find the old status and record nothing.
    const overall = this.#nextOverall(Date.now());
    if (overall.transition !== null) this.#transition(overall.transition, overall.status);
  }

  /** Runs one check now (a push arrived) and sends a snapshot at once when its state changed. */
  async runNow(name: string): Promise<void> {
    const tracker = this.#trackers.get(name);
    if (tracker === undefined) return;
    const before = tracker.state;
    if (!tracker.running) await this.#run(tracker);
    if (tracker.state !== before && this.#latest !== null) this.publishNow();
  }

  /** Builds and sends a snapshot now (an announcement changed); the interval goes on. */
  publishNow(): Latest {
    return this.#publish();
  }

  #cancel(tracker: Tracker): void {
    if (tracker.timer !== null) clearTimeout(tracker.timer);
    tracker.timer = null;
  }

  async #run(tracker: Tracker): Promise<void> {
    this.#cancel(tracker);
    tracker.running = true;
    const startMs = performance.now();
    tracker.startedMs = startMs;
    let outcome: Outcome;
    try {
      outcome = await runCheck(tracker.def, this.#options.context);
    } catch (err) {
      // runCheck never rejects; if it ever did, the check is down rather than the process.
      outcome = { state: 'down', detail: 'internal error', reason: 'internal error', latencyMs: 0 };
      this.#options.log.error('check failed unexpectedly', {
        check: tracker.def.name,
        err: err instanceof Error ? err : String(err),
      });
    }
    tracker.running = false;
    if (tracker.removed) return;
    this.#apply(tracker, outcome);
    if (this.#running) {
      const delayMs = this.#nextStartMs(tracker, startMs) - performance.now();
      tracker.timer = setTimeout(() => void this.#run(tracker), Math.max(0, delayMs));
    }
    if (
      this.#latest === null &&
      this.#firstTimer !== null &&
      [...this.#trackers.values()].every((t) => t.latest !== null)
    ) {
      this.#publishFirst();
    }
  }

  /**
   * One interval after `startMs`; after the first run of a spread batch, the first time in the check's
   * slot (slotMs plus whole intervals) at least half an interval after `startMs`.
   */
  #nextStartMs(tracker: Tracker, startMs: number): number {
    const { intervalMs } = tracker.def;
    const slotMs = tracker.slotMs;
    if (slotMs === null) return startMs + intervalMs;
    tracker.slotMs = null;
    return slotMs + Math.max(0, Math.ceil((startMs + intervalMs / 2 - slotMs) / intervalMs)) * intervalMs;
  }

  #apply(tracker: Tracker, outcome: Outcome): void {
    const { def } = tracker;
    const { log } = this.#options;
    const nowMs = Date.now();
    tracker.latest = outcome;
    tracker.streak = outcome.state === tracker.state ? 0 : tracker.streak + 1;
    const before = tracker.state;
    const state = nextState(before, outcome.state, tracker.streak, def);
    if (outcome.state === 'down') tracker.stats.fail++;
    else tracker.stats.ok++;
    if (state === outcome.state) tracker.reason = outcome.reason;
    this.#options.history?.record(def.name, state, outcome.latencyMs, nowMs);
    if (state !== before) {
      tracker.state = state;
      tracker.streak = 0;
      tracker.since = new Date(nowMs).toISOString();
      // The overall status first, so that the check's transition goes out with the status it brings.
      const overall = this.#nextOverall(nowMs);
      // A healthy first state is no news: a restart of a healthy service records nothing.
      if (before !== null || state !== 'up') {
        const transition = { time: tracker.since, check: def.name, from: before, to: state, reason: tracker.reason };
        this.#transition(transition, overall.status);
        const fields = {
          check: def.name,
          from: before,
          to: state,
          reason: tracker.reason,
          detail: outcome.detail,
          target: def.target,
        };
        if (state === 'up') log.info('check recovered', fields);
        else log.warn(`check ${state}`, fields);
      }
      if (overall.transition !== null) this.#transition(overall.transition, overall.status);
    } else if (outcome.state !== 'up') {
      log.debug('check still failing', { check: def.name, state, detail: outcome.detail, reason: outcome.reason });
    }
    tracker.stats.last = this.#result(tracker, nowMs);
  }

  /**
   * The overall status over the checks that have a state, and its transition if it changed. The
   * first one waits for every check's first state, so that the order in which first results come
   * records nothing: a start with one check down is one transition from null, never "down" first.
   */
  #nextOverall(nowMs: number): { status: OverallStatus; transition: Transition | null } {
    const known = [...this.#trackers.values()].filter((t) => t.state !== null);
    const status = overallStatus(known.map((t) => ({ state: t.state as CheckState, critical: t.def.critical })));
    const before = this.#overall;
    const waiting = before === null && known.length < this.#trackers.size;
    if (status === before || waiting) return { status, transition: null };
    this.#overall = status;
    if (before === null && status === 'up') return { status, transition: null };
    const notUp = known.filter((t) => t.state !== 'up').map((t) => `${t.def.name} is ${t.state}`);
    const reason = status === 'up' ? null : notUp.join(', ');
    const time = new Date(nowMs).toISOString();
    return { status, transition: { time, check: null, from: before, to: status, reason } };
  }

  #transition(transition: Transition, overall: OverallStatus): void {
    try {
      this.#options.onTransition?.(transition, overall);
    } catch (err) {
      this.#options.log.error('transition subscriber failed', { err: err instanceof Error ? err : String(err) });
    }
  }

  #result(tracker: Tracker, nowMs: number): CheckResult {
    const { def } = tracker;
    const outcome = tracker.latest;
    const state = tracker.state ?? 'up';
    const result: CheckResult = {
      name: def.name,
      kind: def.kind,
      target: def.target,
      ok: state !== 'down',
      state,
      reason: state === 'up' ? null : tracker.reason,
      since: tracker.since,
      latencyMs: outcome?.latencyMs ?? 0,
      detail: outcome?.detail ?? 'pending',
      uptime: this.#options.history?.uptime(def.name, nowMs) ?? NO_UPTIME,
    };
    return outcome?.certExpiresAt === undefined ? result : { ...result, certExpiresAt: outcome.certExpiresAt };
  }

  #publishFirst(): void {
    if (this.#firstTimer !== null) clearTimeout(this.#firstTimer);
    this.#firstTimer = null;
    if (!this.#running || this.#latest !== null) return;
    this.#publish();
    this.#snapshotTimer = setInterval(() => this.#publish(), this.#options.intervalMs);
  }

  #publish(): Latest {
    const startMs = performance.now();
    const nowMs = Date.now();
    // Checks still waiting for their first result are shown as pending, up, until they have one.
    const trackers = [...this.#trackers.values()];
    const checks = trackers.map((t) => this.#result(t, nowMs));
    const status = overallStatus(trackers.map((t, i) => ({ state: checks[i].state, critical: t.def.critical })));
    const snapshot = this.#snapshot(status, checks, nowMs);
    const latest: Latest = { snapshot, json: JSON.stringify(snapshot), atMs: performance.now() };
    this.lastBuildMs = latest.atMs - startMs;
    this.#latest = latest;
    this.rounds++;
    for (const resolve of this.#waiting.splice(0)) resolve(latest);
    try {
      this.#options.onSnapshot(latest);
    } catch (err) {
      // A failing subscriber must not stop the poller: the next snapshot still comes.
      this.#options.log.error('snapshot subscriber failed', { err: err instanceof Error ? err : String(err) });
    }
    return latest;
  }

  #snapshot(status: OverallStatus, checks: readonly CheckResult[], nowMs: number): Snapshot {
    const options = this.#options;
    const delayMs = eventLoopDelayMs();
    loopDelay.reset();
    return {
      status,
      time: new Date(nowMs).toISOString(),
      checks,
      host: hostReading(),
      service: {
        title: options.title,
        version: options.version,
        uptimeSeconds: Math.round(process.uptime()),
        clients: options.clients(),
        rssBytes: residentMemoryBytes(),
        eventLoopDelayMs: delayMs,
        intervalMs: options.intervalMs,
        heartbeatMs: options.heartbeatMs,
      },
      announcement: options.announcement?.() ?? null,
    };
  }
}
