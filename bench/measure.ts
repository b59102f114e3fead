// bench/measure.ts: what the bench measures and how: readings of a process and of the
// machine from /proc (RSS, CPU ticks, descriptors, listen-queue overflows), the samplers
// that follow one server through the load generator's phases, and the figures and medians
// made from them. It only reads; it never starts or signals a process.
// What the figures mean: bench/README.md.

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { get, sleep } from './processes.ts';

const MiB = 1024 * 1024;
/** "Near the start": RSS at most this many times its value before the clients came. */
export const NEAR_START_FACTOR = 1.5;
const RSS_POLL_MS = 250;
const RELEASE_POLL_MS = 10;
/** How long the server may take to close every socket after the clients leave. */
const RELEASE_TIMEOUT_MS = 30_000;

export const r1 = (x: number): number => Math.round(x * 10) / 10;
export const r2 = (x: number): number => Math.round(x * 100) / 100;
export const now = (): number => performance.timeOrigin + performance.now();

// --- /proc readings (proc(5)) ---

let clockTicks = 0;
/** Clock ticks per second of /proc/PID/stat's times (getconf CLK_TCK, 100 if unknown); read once. */
export function clockTicksPerSecond(): number {
  if (clockTicks === 0) {
    try {
      const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
      clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

export const ticksToUs = (ticks: number): number => (ticks * 1e6) / clockTicksPerSecond();

export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error(`bench: no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** [utime, stime] in clock ticks: user space (JS, V8, libuv) and kernel (syscalls, TCP). */
export function cpuSplit(pid: number): [number, number] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: split after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [Number(fields[11]), Number(fields[12])];
}

/** utime + stime of every thread of the process, in clock ticks (fields 14 and 15). */
export function cpuTicks(pid: number): number {
  const [user, system] = cpuSplit(pid);
  return user + system;
}

/** Busy clock ticks of the whole machine, all cores (the "cpu" line of /proc/stat). */
export function machineBusyTicks(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] as string;
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  return (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
}

/**
 * The kernel's count of connections dropped because a listen queue was full (TcpExt
 * ListenOverflows in /proc/net/netstat): machine-wide, so read around one server's
 * connection phase it says whether that server's backlog overflowed.
 */
export function listenOverflows(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = (lines[i] as string).split(' ');
    if (names[0] !== 'TcpExt:') continue;
    const at = names.indexOf('ListenOverflows');
    return at === -1 ? Number.NaN : Number((lines[i + 1] as string).split(' ')[at]);
  }
  return Number.NaN;
}

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** This process's soft limit on open files (/proc/self/limits). */
export function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1]);
}

/** The machine a report was measured on, for its header and its JSON. */
export function machine(server: { nodeVersion: string; nodePath: string }): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memGiB: Math.round(os.totalmem() / 1024 ** 3),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    serverNode: server.nodeVersion,
    serverNodePath: server.nodePath,
    clkTck: clockTicksPerSecond(),
    somaxconn: ((): string => {
      try {
        return readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim();
      } catch {
        return 'unknown';
      }
    })(),
  };
}

/** `status_check_rounds_total` from the server's /metrics, or null when it has none. */
export async function checkRounds(port: number): Promise<number | null> {
  try {
    // A saturated server (the naive one at 10,000 streams) answers late.
    const { status, body } = await get(port, '/metrics', 30_000);
    if (status !== 200) return null;
    const m = /^status_check_rounds_total(?:\{[^}]*\})? (\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/m.exec(body);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

// --- following one server through a run ---

/** CPU ticks of the server (all, and in the kernel), the load generator and the machine, and the time. */
export interface Counters {
  cpu: number;
  system: number;
  loadgen: number;
  machine: number;
  t: number;
}

export function readCounters(pid: number, loadgenPid: number): Counters {
  const [user, system] = cpuSplit(pid);
  return { cpu: user + system, system, loadgen: cpuTicks(loadgenPid), machine: machineBusyTicks(), t: now() };
}

/** The server's RSS every 250 ms while it runs: peak, sum and count of the samples. */
export class RssSampler {
  peak = 0;
  sum = 0;
  samples = 0;
  #timer: NodeJS.Timeout | null = null;
  readonly #pid: number;

  constructor(pid: number) {
    this.#pid = pid;
  }

  start(): void {
    this.peak = rssBytes(this.#pid);
    this.sum = this.peak;
    this.samples = 1;
    this.#timer = setInterval(() => {
      try {
        this.#add(rssBytes(this.#pid));
      } catch {
        // the process is gone; the next step reports it
      }
    }, RSS_POLL_MS);
  }

  /** Stops sampling; with `last`, takes one more reading for the peak only. */
  stop(last = false): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    if (last) this.peak = Math.max(this.peak, rssBytes(this.#pid));
  }

  #add(rss: number): void {
    this.peak = Math.max(this.peak, rss);
    this.sum += rss;
    this.samples++;
  }
}

/**
 * The fewest descriptors the server held over `ms`: a check's or an alert's socket comes and goes
 * (the poller runs its checks in steps spread over the interval), a stream's socket that was not
 * released stays.
 */
export async function settledFds(pid: number, ms = 500): Promise<number> {
  let fewest = openFds(pid);
  for (const end = now() + ms; now() < end; ) {
    await sleep(RELEASE_POLL_MS);
    fewest = Math.min(fewest, openFds(pid));
  }
  return fewest;
}

/** When the server's descriptor count is back to `fdsBefore` (0: not within the timeout). */
export async function waitForRelease(pid: number, fdsBefore: number, leavingAt: number): Promise<number> {
  const deadline = leavingAt + RELEASE_TIMEOUT_MS;
  while (now() < deadline) {
    if (openFds(pid) <= fdsBefore) return now();
    await sleep(RELEASE_POLL_MS);
  }
  return 0;
}

/**
 * V8 gives memory back only after a GC, and an idle process allocates nothing to trigger
 * one: watches RSS until it is near the start again, or `afterMaxMs` runs out.
 */
export async function watchRssReturn(
  pid: number,
  rssBefore: number,
  leavingAt: number,
  afterMaxMs: number,
): Promise<{ rssAfter: number; nearStartAfterMs: number }> {
  const afterStart = now();
  let rssAfter = rssBytes(pid);
  while (now() - afterStart < afterMaxMs) {
    rssAfter = rssBytes(pid);
    if (rssAfter <= rssBefore * NEAR_START_FACTOR) return { rssAfter, nearStartAfterMs: now() - leavingAt };
    await sleep(250);
  }
  return { rssAfter, nearStartAfterMs: Number.NaN };
}

// --- figures ---

type Spread = { p50: number; p99: number; max: number };

/** The load generator's "result" message (bench/loadgen.ts). */
export interface LoadgenResult {
  connect: {
    withFirstEvent: number;
    allFirstEventsMs: number;
    failed: Record<string, number>;
    firstEventMs: Spread;
    responseHeadMs: Spread;
    tcpConnectMs: Spread;
  };
  aliveAtWindowStart: number;
  aliveAtEnd: number;
  delivered: number;
  expected: number;
  lost: number;
  roundsSeen: number | null;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number; count: number };
  loadgen: { cpuMs: number; rssBytes: number };
  /** Streams that asked for `?events=` (--filtered-share): all, and open at the window's start. */
  filtered?: { clients: number; aliveAtWindowStart: number };
  /** Events a filtered stream got that its filter does not name. */
  filterLeaks?: number;
  /** Events delivered in the window by type (message = snapshots), and distinct events by type. */
  deliveredByType?: Record<string, number>;
  eventsByType?: Record<string, number>;
  /** Mean characters of a snapshot's data in the window. */
  snapshotChars?: number;
  /** App events, apart from `latencyMs` (snapshots and change events): from the app's stamp. */
  appLatencyMs?: { count: number; p50: number; p99: number; max: number };
  [key: string]: unknown;
}

/** What the full scenario's helper (bench/full-helper.ts) saw: the app's events, the alerts. */
export interface WorldReport {
  /** App events the service accepted (202), in all and with their time in the steady window. */
  published: number;
  publishedInWindow: number;
  publishFailed: number;
  /** Alerts each receiver got, in all and in the steady window. */
  alerts: number[];
  alertsInWindow: number[];
  targetRequests: number;
}

export interface ServerResult {
  name: string;
  clients: number;
  withFirstEvent: number;
  allFirstEventsS: number;
  firstEventP99Ms: number;
  memPerStreamKiB: number;
  /** From the mean RSS over the window; memPerStreamKiB is from the peak. */
  memPerStreamMeanKiB: number;
  memPerStreamAtReadyKiB: number;
  cpuUsPerEvent: number;
  cpuPercentInWindow: number;
  /** Of the server's CPU in the window, the share spent in the kernel (stime). */
  kernelSharePercent: number;
  /** The load generator's CPU in the window, % of one core. */
  loadgenCpuPercentInWindow: number;
  /** Everything else on the machine in the window, % of one core: the noise. */
  otherCpuPercentInWindow: number;
  connectCpuUsPerStream: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  delivered: number;
  expected: number;
  lost: number;
  /** status-stream: from status_check_rounds_total; naive: one check per delivered event. */
  checkRoundsInWindow: number | null;
  /** Connections the kernel dropped from a full listen queue while the streams opened. */
  listenOverflows: number;
  releaseMs: number;
  rssBeforeMiB: number;
  rssPeakMiB: number;
  rssAfterMiB: number;
  /** Seconds from the clients leaving until RSS was near the start; NaN if not within --after. */
  nearStartAfterS: number;
  fdsBefore: number;
  fdsAfter: number;
  cpuProfile: string | null;
  /** Streams with an `?events=` filter open when the window began (0 without --filtered-share). */
  filteredStreams: number;
  /** Events delivered in the window: snapshots, app events, change events. */
  snapshotsDelivered: number;
  appEventsDelivered: number;
  changesDelivered: number;
  /** Distinct app events and change events in the window. */
  appEventsInWindow: number;
  changesInWindow: number;
  filterLeaks: number;
  /** Mean size of a snapshot's data in the window, bytes (ASCII). */
  snapshotBytes: number;
  /** App events: from the app's stamp before its POST to arrival (NaN: none). */
  appLatencyP50Ms: number;
  appLatencyP99Ms: number;
  /** Alerts the receivers got in the window, summed; null without the full scenario's helper. */
  alertsInWindow: number | null;
  world: WorldReport | null;
  loadgen: LoadgenResult;
}

/** Everything read from /proc and /metrics during one server's run. */
export interface Readings {
  rssBefore: number;
  fdsBefore: number;
  cpuBefore: number;
  overflowsBefore: number;
  rssReady: number;
  cpuReady: number;
  overflowsReady: number;
  window: { start: Counters; end: Counters };
  rss: { peak: number; sum: number; samples: number };
  roundsAtStart: number | null;
  roundsAtEnd: number | null;
  leavingAt: number;
  /** 0: the descriptors were not back within the timeout. */
  releasedAt: number;
  rssAfter: number;
  nearStartAfterMs: number;
  fdsAfter: number;
}

/** One server's figures from its readings and the load generator's result. */
export function figures(
  server: { name: string; rounds: 'shared' | 'per-client'; clients: number; cpuProfile: string | null },
  m: Readings,
  res: LoadgenResult,
  world: WorldReport | null = null,
): ServerResult {
  const alive = res.aliveAtWindowStart;
  const filtered = res.filtered?.aliveAtWindowStart ?? 0;
  const byType = res.deliveredByType ?? {};
  const events = res.eventsByType ?? {};
  const countOf = (counts: Record<string, number>, type: string): number => counts[type] ?? 0;
  const appOf = (counts: Record<string, number>): number =>
    Object.entries(counts).reduce((sum, [type, n]) => (type === 'message' || type === 'change' ? sum : sum + n), 0);
  // The load generator expects the app events some stream got; the app knows what it published.
  const appMissing = world === null ? 0 : Math.max(0, world.publishedInWindow - appOf(events));
  const expected = res.expected + appMissing * (alive - filtered);
  const { start: w0, end: w1 } = m.window;
  const windowUs = (w1.t - w0.t) * 1000;
  const perStreamKiB = (rss: number, streams: number): number => r2((rss - m.rssBefore) / Math.max(1, streams) / 1024);
  const percentOfCore = (ticks: number): number => r1((100 * ticksToUs(ticks)) / windowUs);
  const serverTicks = w1.cpu - w0.cpu;
  const loadgenTicks = w1.loadgen - w0.loadgen;
  return {
    name: server.name,
    clients: server.clients,
    withFirstEvent: res.connect.withFirstEvent,
    allFirstEventsS: r2(res.connect.allFirstEventsMs / 1000),
    firstEventP99Ms: res.connect.firstEventMs.p99,
    memPerStreamKiB: perStreamKiB(m.rss.peak, alive),
    memPerStreamMeanKiB: perStreamKiB(m.rss.sum / Math.max(1, m.rss.samples), alive),
    memPerStreamAtReadyKiB: perStreamKiB(m.rssReady, res.connect.withFirstEvent),
    cpuUsPerEvent: r2(ticksToUs(serverTicks) / Math.max(1, res.delivered)),
    cpuPercentInWindow: percentOfCore(serverTicks),
    kernelSharePercent: r1((100 * (w1.system - w0.system)) / Math.max(1, serverTicks)),
    loadgenCpuPercentInWindow: percentOfCore(loadgenTicks),
    otherCpuPercentInWindow: percentOfCore(Math.max(0, w1.machine - w0.machine - serverTicks - loadgenTicks)),
    connectCpuUsPerStream: r1(ticksToUs(m.cpuReady - m.cpuBefore) / Math.max(1, res.connect.withFirstEvent)),
    latencyP50Ms: res.latencyMs.p50,
    latencyP99Ms: res.latencyMs.p99,
    latencyMaxMs: res.latencyMs.max,
    delivered: res.delivered,
    expected,
    lost: res.lost + appMissing * (alive - filtered),
    checkRoundsInWindow: checkRoundsInWindow(server.rounds, m, res),
    listenOverflows: m.overflowsReady - m.overflowsBefore,
    releaseMs: m.releasedAt > 0 ? Math.round(m.releasedAt - m.leavingAt) : Number.NaN,
    rssBeforeMiB: r1(m.rssBefore / MiB),
    rssPeakMiB: r1(m.rss.peak / MiB),
    rssAfterMiB: r1(m.rssAfter / MiB),
    nearStartAfterS: r1(m.nearStartAfterMs / 1000),
    fdsBefore: m.fdsBefore,
    fdsAfter: m.fdsAfter,
    cpuProfile: server.cpuProfile,
    filteredStreams: filtered,
    snapshotsDelivered: countOf(byType, 'message'),
    appEventsDelivered: appOf(byType),
    changesDelivered: countOf(byType, 'change'),
    appEventsInWindow: Math.max(appOf(events), world?.publishedInWindow ?? 0),
    changesInWindow: countOf(events, 'change'),
    filterLeaks: res.filterLeaks ?? 0,
    snapshotBytes: res.snapshotChars ?? Number.NaN,
    appLatencyP50Ms: res.appLatencyMs?.p50 ?? Number.NaN,
    appLatencyP99Ms: res.appLatencyMs?.p99 ?? Number.NaN,
    alertsInWindow: world === null ? null : world.alertsInWindow.reduce((a, b) => a + b, 0),
    world,
    loadgen: res,
  };
}

function checkRoundsInWindow(rounds: 'shared' | 'per-client', m: Readings, res: LoadgenResult): number | null {
  // The naive server runs one check per event it sends, and at 10,000 streams its timers
  // starve its I/O so badly that /metrics answers only after the window: its checks are
  // counted from the events instead.
  if (rounds === 'per-client') return res.delivered;
  return m.roundsAtStart !== null && m.roundsAtEnd !== null ? m.roundsAtEnd - m.roundsAtStart : null;
}

// --- statistics ---

/** The median of `values`; NaN ("not within the time watched") counts as the largest. */
export function median(values: readonly number[]): number {
  const sorted = values.map((x) => (Number.isNaN(x) ? Number.POSITIVE_INFINITY : x)).sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const at = (i: number): number => sorted[i] as number;
  const m = sorted.length % 2 === 1 ? at(mid) : (at(mid - 1) + at(mid)) / 2;
  return Number.isFinite(m) ? Math.round(m * 1000) / 1000 : Number.NaN;
}

/**
 * One server's runs as one result: every top-level figure is the median over the runs,
 * the rest is the first run's.
 */
export function medianResult(runs: readonly ServerResult[]): ServerResult {
  const [first] = runs;
  if (first === undefined) throw new Error('bench: no runs');
  if (runs.length === 1) return first;
  const result: Record<string, unknown> = { ...first };
  for (const [key, value] of Object.entries(first)) {
    if (typeof value !== 'number') continue;
    result[key] = median(runs.map((r) => r[key as keyof ServerResult] as number));
  }
  return result as unknown as ServerResult;
}
