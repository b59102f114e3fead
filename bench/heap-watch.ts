// bench/heap-watch.ts: a probe loaded into a server with --import, which writes one JSON line
// every HEAP_WATCH_MS (5000) to HEAP_WATCH_FILE (heap-watch-PID.jsonl in the temporary
// directory): the process's CPU since the last line, RSS, the V8 heap and its old space, and
// the garbage collections since the last line by kind, and Node's HTTP parsers: out now, the
// most out at once since the last line, pooled, and made in all. It shows whether a server's
// memory grows inside a window, what the collector does meanwhile (bench/README.md, "A 60 s
// window"), and how many parsers a storm of connections had out at once ("Memory per stream on
// Node 24"). Only for the benchmark:
//
//   npm run bench -- --scenario full --only full --seconds 60 --after 0 \
//     --node-arg=--import=./bench/heap-watch.ts --server-env HEAP_WATCH_FILE=/tmp/full.jsonl

import { appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import { watchParserPool } from './parser-pool.ts';

const MIB = 1024 * 1024;
const GC_KINDS: Readonly<Record<number, string>> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak',
};

/** Collections since the last line: count and main-thread milliseconds, by kind. */
type GcTally = Record<string, { count: number; ms: number }>;

function startHeapWatch(file: string, everyMs: number): void {
  let gcs: GcTally = {};
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const detail = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail;
      const kind = GC_KINDS[detail?.kind ?? -1] ?? 'other';
      const tally = (gcs[kind] ??= { count: 0, ms: 0 });
      tally.count++;
      tally.ms += entry.duration;
    }
  }).observe({ entryTypes: ['gc'] });
  const parsers = watchParserPool();
  const startMs = performance.now();
  let cpu = process.cpuUsage();
  let lastMs = startMs;
  const round = (n: number): number => Math.round(n * 10) / 10;
  setInterval(() => {
    const nowMs = performance.now();
    const used = process.cpuUsage(cpu);
    const memory = process.memoryUsage();
    const old = v8.getHeapSpaceStatistics().find((space) => space.space_name === 'old_space');
    const line = {
      s: round((nowMs - startMs) / 1000),
      cpuPercent: round(((used.user + used.system) / 1000 / (nowMs - lastMs)) * 100),
      rssMiB: round(memory.rss / MIB),
      heapUsedMiB: round(memory.heapUsed / MIB),
      oldUsedMiB: round((old?.space_used_size ?? 0) / MIB),
      oldSizeMiB: round((old?.space_size ?? 0) / MIB),
      externalMiB: round(memory.external / MIB),
      gc: Object.fromEntries(Object.entries(gcs).map(([kind, t]) => [kind, { count: t.count, ms: round(t.ms) }])),
      parsers: parsers?.read() ?? null,
    };
    appendFileSync(file, `${JSON.stringify(line)}\n`);
    cpu = process.cpuUsage();
    lastMs = nowMs;
    gcs = {};
  }, everyMs).unref();
}

startHeapWatch(
  process.env.HEAP_WATCH_FILE ?? join(tmpdir(), `heap-watch-${process.pid}.jsonl`),
  Number(process.env.HEAP_WATCH_MS ?? 5000),
);
