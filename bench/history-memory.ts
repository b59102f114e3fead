// bench/history-memory.ts: the history budget (docs/history.md, "Budget"). Fills 100 checks at a 10 s
// interval with 90 days of runs through History.record(), the path the poller uses, with made-up times
// (about 78 million calls, a minute or two), then measures what the service pays for holding and saving it:
// memory held (heap + typed arrays, after a full GC), the state file's size, the longest event-loop pause
// while StateStore.save() writes it, load time, and the cost of uptime() and query() for every check.
// Targets: <= 32 MiB held (<= 60 KiB a check), <= 16 MiB file, <= 20 ms pause. Writes only to a temporary
// directory.
//
//   node --expose-gc --import tsx bench/history-memory.ts [--checks 100] [--interval-ms 10000] [--days 90]
//       [--json FILE]
//
// Without --expose-gc it enables GC access itself (v8.setFlagsFromString), which works on Node 20 and 22.

import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { History, MAX_TRANSITIONS } from '../history.ts';
import { createLogger } from '../log.ts';
import { StateStore } from '../state-store.ts';
import type { CheckState } from '../status.ts';
import { intFlag } from './flags.ts';

const PROGRAM = 'bench/history-memory.ts';
const MIB = 1024 * 1024;
const DAY_MS = 86_400_000;
// perCheckKiB: 1,000 checks' history must leave room for the rest of the service in 150 MiB of RSS.
const TARGETS = { heldMiB: 32, perCheckKiB: 60, fileMiB: 16, pauseMs: 20 } as const;

const { values } = parseArgs({
  options: {
    checks: { type: 'string', default: '100' },
    'interval-ms': { type: 'string', default: '10000' },
    days: { type: 'string', default: '90' },
    json: { type: 'string' },
  },
});
const checks = intFlag(PROGRAM, 'checks', values.checks, 1, 10_000);
const intervalMs = intFlag(PROGRAM, 'interval-ms', values['interval-ms'], 100, 3_600_000);
const days = intFlag(PROGRAM, 'days', values.days, 1, 365);

const gc = ((): (() => void) => {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

/** Heap used plus memory outside the heap (typed arrays' backing stores), after full GCs. */
function heldBytes(): number {
  for (let i = 0; i < 3; i++) gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

// A deterministic generator (mulberry32), so every run records the same states and latencies.
let seed = 0x5eed;
function random(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const names = Array.from({ length: checks }, (_, i) => `service-${String(i).padStart(3, '0')}.example.internal:443`);
const endMs = Date.UTC(2025, 0, 1);
const startMs = endMs - days * DAY_MS;

const baseline = heldBytes();
const history = new History();
let records = 0;
const fillStart = performance.now();
for (let t = startMs; t < endMs; t += intervalMs) {
  for (let c = 0; c < checks; c++) {
    const r = random();
    // 99.5 % up, 0.3 % degraded, 0.2 % down (a timeout: its latency is the 2 s default timeout, as the poller
    // records it); latencies 20-320 ms in 0.1 ms.
    const state: CheckState = r < 0.995 ? 'up' : r < 0.998 ? 'degraded' : 'down';
    const latencyMs = state === 'down' ? 2000 : Math.round((20 + r * 300) * 10) / 10;
    // Runs of one check spread over the interval, as the poller's own schedules do.
    history.record(names[c], state, latencyMs, t + ((c * 97) % intervalMs));
    records++;
  }
}
const fillMs = performance.now() - fillStart;
// Each check's share (its buffers, objects and name), before the transitions, which all checks share.
const perCheck = (heldBytes() - baseline) / checks;
for (let i = 0; i < MAX_TRANSITIONS; i++) {
  const to: CheckState = i % 2 === 0 ? 'down' : 'up';
  history.addTransition({
    time: new Date(startMs + i * 3_600_000).toISOString(),
    check: i % 10 === 0 ? null : names[i % checks],
    from: to === 'down' ? 'up' : 'down',
    to,
    reason: to === 'down' ? 'HTTP 503, expected 200-299' : null,
  });
}
const held = heldBytes() - baseline;

// uptime() as each snapshot calls it, for every check: the first call in a new minute sums the finished
// buckets, the next ones in that minute read the live bucket only. Each figure is the first call (code
// not yet optimized, as after start-up) and the median of the next four (minutes later).
const nowMs = endMs - 1;
const timed = (action: () => void): number => {
  const t0 = performance.now();
  action();
  return performance.now() - t0;
};
const uptimeNewMinute: number[] = [];
const uptimeSameMinute: number[] = [];
for (let minute = 0; minute < 5; minute++) {
  const at = nowMs + minute * 60_000;
  const everyCheck = (): void => {
    for (const name of names) history.uptime(name, at);
  };
  uptimeNewMinute.push(timed(everyCheck));
  uptimeSameMinute.push(timed(everyCheck));
}
const query24h: number[] = [];
const query90d: number[] = [];
for (let i = 0; i < 5; i++) {
  query24h.push(timed(() => JSON.stringify(history.query({ range: '24h', buckets: 90, checks: names }, nowMs))));
  query90d.push(timed(() => JSON.stringify(history.query({ range: '90d', buckets: 500, checks: names }, nowMs))));
}
const firstAndMedian = (times: number[]): string => `${ms(times[0])} / ${ms(median(times.slice(1)))} ms`;
function median(times: number[]): number {
  return [...times].sort((x, y) => x - y)[Math.floor(times.length / 2)];
}

function ms(value: number): string {
  return value.toFixed(1);
}

/** Time of each step of a generator: how long each of its pieces holds the event loop. */
function pieceTimes(pieces: Iterable<string>): number[] {
  const times: number[] = [];
  const iterator = pieces[Symbol.iterator]();
  for (;;) {
    const t0 = performance.now();
    const next = iterator.next();
    if (next.done) break;
    times.push(performance.now() - t0);
  }
  return times;
}

// queryJson()'s pieces: the most a route that writes them one by one holds the loop.
const queryPieceTimes = pieceTimes(history.queryJson({ range: '90d', buckets: 500, checks: names }, nowMs));
const longestQueryPieceMs = Math.max(...queryPieceTimes);
// The save's pieces: the most one step of the save spends building JSON without yielding.
const savePieceTimes = pieceTimes(history.jsonPieces());
const longestPieceMs = Math.max(...savePieceTimes);
const pieces = savePieceTimes.length;

/** The longest gap between runs of a 1 ms interval timer while `action` runs, minus the 1 ms. */
async function longestGapMs(action: () => Promise<void>): Promise<number> {
  let longest = 0;
  let last = performance.now();
  const watchdog = setInterval(() => {
    const t = performance.now();
    longest = Math.max(longest, t - last - 1);
    last = t;
  }, 1);
  try {
    await new Promise((resolve) => setTimeout(resolve, 20));
    longest = 0;
    last = performance.now();
    await action();
  } finally {
    clearInterval(watchdog);
  }
  return longest;
}

// The save, done SAVES times, each watched two ways (libuv's loop-delay histogram at 1 ms resolution,
// and a 1 ms interval timer that records the longest gap between its runs) and each after an idle window
// of the same timer: on a shared machine the idle windows show what other processes do to a timer.
// GC pauses are observed too: a pause much longer than the GCs and the idle windows is the machine.
const SAVES = 5;
const IDLE_WINDOW_MS = 300;
const dir = mkdtempSync(join(tmpdir(), 'history-bench-'));
let fileBytes = 0;
const savePauses: number[] = [];
const idlePauses: number[] = [];
const saveTimes: number[] = [];
let longestGcMs = 0;
let loadMs = 0;
let same = false;
try {
  const store = StateStore.open(dir);
  const gcs = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) longestGcMs = Math.max(longestGcMs, entry.duration);
  });
  for (let i = 0; i < SAVES; i++) {
    // What the bench made before (the queries' answers) is collected now, not during the save.
    gc();
    idlePauses.push(await longestGapMs(() => new Promise((resolve) => setTimeout(resolve, IDLE_WINDOW_MS))));
    const delay = monitorEventLoopDelay({ resolution: 1 });
    const watchdogMs = await longestGapMs(async () => {
      gcs.observe({ entryTypes: ['gc'] });
      delay.enable();
      const saveStart = performance.now();
      await store.save('history.json', history.jsonPieces());
      saveTimes.push(performance.now() - saveStart);
      delay.disable();
      gcs.disconnect();
    });
    // The histogram records the whole interval of its 1 ms timer; the pause is what exceeds it.
    savePauses.push(Math.max(watchdogMs, delay.max / 1e6 - 1));
  }
  fileBytes = statSync(join(dir, 'history.json')).size;

  const log = createLogger('error');
  const loadStart = performance.now();
  const loaded = store.load('history.json', log, History.fromJSON);
  loadMs = performance.now() - loadStart;
  const q = { range: '30d', buckets: 30, checks: names } as const;
  same = loaded !== null && JSON.stringify(loaded.query(q, nowMs)) === JSON.stringify(history.query(q, nowMs));
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const pauseMs = median(savePauses);
const mib = (bytes: number): string => (bytes / MIB).toFixed(2);
const verdict = (ok: boolean): string => (ok ? 'ok' : 'OVER');
const rows: Array<[string, string, string]> = [
  ['runs recorded', `${records.toLocaleString('en')} (${checks} checks, ${intervalMs / 1000} s, ${days} days)`, ''],
  ['fill time', `${ms(fillMs / 1000)} s (${ms((fillMs * 1e6) / records / 1000)} µs per record())`, ''],
  ['memory held', `${mib(held)} MiB`, `<= ${TARGETS.heldMiB} MiB ${verdict(held <= TARGETS.heldMiB * MIB)}`],
  [
    'memory held per check',
    `${(perCheck / 1024).toFixed(1)} KiB (without the transitions)`,
    `<= ${TARGETS.perCheckKiB} KiB ${verdict(perCheck <= TARGETS.perCheckKiB * 1024)}`,
  ],
  ['state file', `${mib(fileBytes)} MiB`, `<= ${TARGETS.fileMiB} MiB ${verdict(fileBytes <= TARGETS.fileMiB * MIB)}`],
  [
    `longest pause, ${SAVES} saves`,
    `median ${ms(pauseMs)} ms, max ${ms(Math.max(...savePauses))} ms (idle windows: median ` +
      `${ms(median(idlePauses))} ms, max ${ms(Math.max(...idlePauses))} ms)`,
    `<= ${TARGETS.pauseMs} ms ${verdict(pauseMs <= TARGETS.pauseMs)}`,
  ],
  ['longest GC while saving', `${ms(longestGcMs)} ms`, ''],
  ['state file pieces', `${pieces}, longest ${ms(longestPieceMs)} ms, median ${ms(median(savePieceTimes))} ms`, ''],
  ['save, start to renamed', `median ${ms(median(saveTimes))} ms`, ''],
  ['load (read, parse, fromJSON)', `${ms(loadMs)} ms, answers ${same ? 'equal' : 'DIFFERENT'}`, ''],
  ['uptime(), all, new minute', `${firstAndMedian(uptimeNewMinute)} (first / median of next 4)`, ''],
  ['uptime(), all, same minute', `${firstAndMedian(uptimeSameMinute)}`, ''],
  ['JSON.stringify(query()), all', `24h/90: ${firstAndMedian(query24h)}, 90d/500: ${firstAndMedian(query90d)}`, ''],
  [
    'queryJson() pieces, 90d/500',
    `longest ${ms(longestQueryPieceMs)} ms, median ${ms(median(queryPieceTimes))} ms`,
    '',
  ],
];
const width = Math.max(...rows.map((r) => r[0].length));
process.stdout.write(`${PROGRAM} on Node ${process.version}\n`);
for (const [what, value, target] of rows) process.stdout.write(`${what.padEnd(width)}  ${value}  ${target}\n`);

if (values.json !== undefined) {
  const result = {
    node: process.version,
    checks,
    intervalMs,
    days,
    records,
    fillMs,
    heldBytes: held,
    heldBytesPerCheck: Math.round(perCheck),
    fileBytes,
    savePauses,
    idlePauses,
    longestGcMs,
    longestPieceMs,
    pieces,
    saveTimes,
    loadMs,
    loadedEqual: same,
    uptimeNewMinute,
    uptimeSameMinute,
    query24h,
    query90d,
    longestQueryPieceMs,
    targets: TARGETS,
  };
  writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
}
const over =
  held > TARGETS.heldMiB * MIB || perCheck > TARGETS.perCheckKiB * 1024 || fileBytes > TARGETS.fileMiB * MIB || !same;
process.exitCode = over ? 1 : 0;
