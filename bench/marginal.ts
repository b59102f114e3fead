// bench/marginal.ts: what one more stream and one more event cost each server, from the
// JSON of two bench runs that differ only in --clients: the slopes between the two runs,
// and the intercepts, what a straight line through them leaves at none. A single run's
// figures, (RSS - RSS before) / streams and CPU / events, also spread over the streams what
// the server holds and does under load anyway. RSS does not grow in a straight line with
// the streams, so compare more than one pair (bench/README.md, "per extra stream").
// Reads the files it is given, prints a Markdown table.
//
//   node --import tsx bench/marginal.ts SMALL.json LARGE.json
//
// With --repeat N runs, each server's figures are the means of its runs.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ServerResult } from './measure.ts';
import { COMPARISONS, checkLoadOf, type Report } from './report.ts';

/** One server's load and costs at one stream count: means over its runs. */
export interface Point {
  streams: number;
  eventsPerS: number;
  /** Server CPU, ms per second of the window. */
  cpuMsPerS: number;
  /** Peak RSS in the window minus RSS before the streams, MiB. */
  growthMiB: number;
}

export interface Marginal {
  name: string;
  small: Point;
  large: Point;
  cpuUsPerEvent: number;
  memKiBPerStream: number;
  cpuInterceptMsPerS: number;
  memInterceptMiB: number;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

function point(runs: readonly ServerResult[], { clients, seconds }: Report['settings']): Point {
  const eventsPerS = runs.map((r) => r.delivered / seconds);
  return {
    streams: clients,
    eventsPerS: mean(eventsPerS),
    cpuMsPerS: mean(runs.map((r, i) => (r.cpuUsPerEvent * (eventsPerS[i] as number)) / 1000)),
    growthMiB: mean(runs.map((r) => r.rssPeakMiB - r.rssBeforeMiB)),
  };
}

/** The slopes and intercepts of every server in both reports; throws when they are not comparable. */
export function marginals(small: Report, large: Report): Marginal[] {
  const a = small.settings;
  const b = large.settings;
  // Reports from before the full scenario have no `scenario`: they are bare.
  const settings = (s: Report['settings']) => {
    const full = s.scenario === 'full';
    return {
      scenario: s.scenario ?? 'bare',
      intervalMs: s.intervalMs,
      seconds: s.seconds,
      checks: full ? checkLoadOf(s).count : 0,
      checkIntervalMs: full ? checkLoadOf(s).intervalMs : 0,
    };
  };
  const [x, y] = [settings(a), settings(b)];
  for (const key of ['scenario', 'intervalMs', 'seconds', 'checks', 'checkIntervalMs'] as const) {
    if (x[key] !== y[key]) throw new Error(`the runs differ in ${key} (${x[key]} and ${y[key]}); only --clients may`);
  }
  if (a.clients >= b.clients)
    throw new Error(`the first run needs fewer streams than the second (${a.clients}, ${b.clients})`);
  const runsOf = (report: Report, name: string): ServerResult[] =>
    (report.runs ?? report.results).filter((r) => r.name === name);
  const names = small.results.map((r) => r.name).filter((name) => runsOf(large, name).length > 0);
  return names.map((name) => {
    const s = point(runsOf(small, name), a);
    const l = point(runsOf(large, name), b);
    const cpuUsPerEvent = ((l.cpuMsPerS - s.cpuMsPerS) * 1000) / (l.eventsPerS - s.eventsPerS);
    const memKiBPerStream = ((l.growthMiB - s.growthMiB) * 1024) / (l.streams - s.streams);
    return {
      name,
      small: s,
      large: l,
      cpuUsPerEvent,
      memKiBPerStream,
      cpuInterceptMsPerS: s.cpuMsPerS - (cpuUsPerEvent * s.eventsPerS) / 1000,
      memInterceptMiB: s.growthMiB - (memKiBPerStream * s.streams) / 1024,
    };
  });
}

/** The table: a row per server, then the marginal ratios of the pairs the bench compares. */
export function marginalTable(rows: readonly Marginal[]): string {
  const f = (x: number, digits = 1): string => x.toFixed(digits);
  const lines = [
    '| server | streams | events/s | CPU (ms/s) | RSS growth (MiB) | CPU per extra event (us) | memory per extra stream (KiB) | CPU intercept (ms/s) | memory intercept (MiB) |',
    '|:--|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...rows.map(
      (m) =>
        `| ${m.name} | ${m.small.streams} → ${m.large.streams} | ${f(m.small.eventsPerS, 0)} → ${f(m.large.eventsPerS, 0)} ` +
        `| ${f(m.small.cpuMsPerS)} → ${f(m.large.cpuMsPerS)} | ${f(m.small.growthMiB)} → ${f(m.large.growthMiB)} ` +
        `| ${f(m.cpuUsPerEvent, 2)} | ${f(m.memKiBPerStream, 2)} | ${f(m.cpuInterceptMsPerS)} | ${f(m.memInterceptMiB)} |`,
    ),
  ];
  const byName = new Map(rows.map((m) => [m.name, m]));
  const ratios: string[] = [];
  for (const c of COMPARISONS) {
    const ours = byName.get(c.ours);
    const other = byName.get(c.other);
    if (ours === undefined || other === undefined) continue;
    ratios.push(
      `${c.label}: CPU per extra event ${f(ours.cpuUsPerEvent / other.cpuUsPerEvent, 2)}x, ` +
        `memory per extra stream ${f(ours.memKiBPerStream / other.memKiBPerStream, 2)}x`,
    );
  }
  return [...lines, '', ...ratios].join('\n');
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const files = process.argv.slice(2);
  try {
    if (files.length !== 2) throw new Error('give two reports: SMALL.json LARGE.json');
    const [small, large] = files.map((file) => JSON.parse(readFileSync(file, 'utf8')) as Report) as [Report, Report];
    process.stdout.write(`${marginalTable(marginals(small, large))}\n`);
  } catch (err) {
    process.stderr.write(`bench/marginal: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
}
