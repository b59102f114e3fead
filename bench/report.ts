// bench/report.ts: the bench's report: the table (one column per server, ratio columns,
// targets), the ratio targets, the per-run lines of a --repeat run, and the JSON's shape.
// Pure functions of the results; it measures and prints nothing.
// How to read the table: bench/README.md.

import { CHECK_INTERVAL_MS, type CheckLoad, criticalChecks, FULL_CHECKS } from './full-helper.ts';
import { NEAR_START_FACTOR, type ServerResult } from './measure.ts';

/** The run's settings, as the JSON keeps them. */
export interface Settings {
  clients: number;
  intervalMs: number;
  seconds: number;
  afterS: number;
  repeat?: number;
  /** How status-stream was started, e.g. `node --max-semi-space-size=2 server.ts` (absent in older reports). */
  statusStreamCommand?: string;
  /** bare: the service alone, as today; full: with every feature on (absent in older reports: bare). */
  scenario?: 'bare' | 'full';
  /** The full scenario's checks and how often each runs, ms (absent in older reports: 50, 5000). */
  checks?: number;
  checkIntervalMs?: number;
  /** With --image: what ran status-stream. */
  image?: { tag: string; base: string; nodeVersion: string; libc: string; nodeOptions: string };
}

/** What a report's JSON holds (and `--table FILE` reads back). */
export interface Report {
  settings: Settings;
  machine: Record<string, unknown>;
  /** Per server: the run's figures, or with --repeat their medians. */
  results: ServerResult[];
  /** Every run, in the order they ran (absent in reports from before --repeat). */
  runs?: ServerResult[];
}

export interface Row {
  label: string;
  value: (r: ServerResult) => number | null;
  format: (x: number, r: ServerResult) => string;
  target: string;
  meets?: (x: number, r: ServerResult) => boolean;
  /** false: a ratio of this row means nothing (the machine's noise, the load generator). */
  ratio?: boolean;
}

/**
 * The ratio columns, each one server's figure divided by another's measured in the same run,
 * shown when both are in the results. `key` names the ratio in the JSON.
 */
export const COMPARISONS = [
  { label: '/ naive', key: 'naive', ours: 'status-stream', other: 'naive' },
  { label: '/ floor', key: 'floor', ours: 'status-stream', other: 'floor' },
  { label: 'full / bare', key: 'bare', ours: 'full', other: 'status-stream' },
  { label: 'full / floor', key: 'floor-full', ours: 'full', other: 'floor-full' },
] as const;

/** The targets on ratios, in the same run: the column's key, the row, the largest ratio allowed. */
export const RATIO_TARGETS = [
  { key: 'floor', row: 'server CPU per delivered event (us)', max: 1.15 },
  { key: 'floor', row: 'latency p99 (ms)', max: 1.2 },
  { key: 'bare', row: 'server CPU per delivered event (us)', max: 1.2 },
  { key: 'bare', row: 'server memory per stream, peak (KiB)', max: 1.1 },
  { key: 'floor-full', row: 'server CPU per delivered event (us)', max: 1.15 },
  { key: 'floor-full', row: 'latency p99 (ms)', max: 1.2 },
] as const;

const fmt =
  (digits: number) =>
  (x: number): string =>
    Number.isFinite(x) ? x.toFixed(digits) : 'n/a';

/** The table's rows; the targets are the service's, at the run's own settings. */
export function rowsFor(settings: Settings): Row[] {
  const windowRounds = Math.floor((settings.seconds * 1000) / settings.intervalMs);
  const clients = settings.clients;
  const plain = (label: string, value: Row['value'], digits: number): Row => ({
    label,
    value,
    format: fmt(digits),
    target: '',
  });
  const goal = (row: Row, target: string, meets: Row['meets']): Row => ({ ...row, target, meets });
  return [
    goal(
      plain('streams with a first event', (r) => r.withFirstEvent, 0),
      `${clients}`,
      (x) => x === clients,
    ),
    {
      label: 'all first events within (s)',
      value: (r) => r.allFirstEventsS,
      // A server that never gave some streams their first event gets no time: "> deadline".
      format: (x, r) => (r.withFirstEvent < r.clients ? `> ${fmt(0)(x)}` : fmt(2)(x)),
      target: '<= 3',
      meets: (x, r) => x <= 3 && r.withFirstEvent === r.clients,
    },
    goal(
      plain('server memory per stream, peak (KiB)', (r) => r.memPerStreamKiB, 1),
      '<= 10',
      (x) => x <= 10,
    ),
    plain('server memory per stream, mean (KiB)', (r) => r.memPerStreamMeanKiB, 1),
    goal(
      plain('server CPU per delivered event (us)', (r) => r.cpuUsPerEvent, 1),
      '<= 20',
      (x) => x <= 20,
    ),
    plain('server CPU in window (% of a core)', (r) => r.cpuPercentInWindow, 1),
    plain('  of which in the kernel (%)', (r) => r.kernelSharePercent, 0),
    { ...plain('load generator CPU in window (% of a core)', (r) => r.loadgenCpuPercentInWindow, 1), ratio: false },
    { ...plain('other processes CPU in window (% of a core)', (r) => r.otherCpuPercentInWindow, 1), ratio: false },
    plain('latency p50 (ms)', (r) => r.latencyP50Ms, 1),
    goal(
      plain('latency p99 (ms)', (r) => r.latencyP99Ms, 1),
      '<= 150',
      (x) => x <= 150,
    ),
    plain('latency max (ms)', (r) => r.latencyMaxMs, 1),
    goal(
      plain('delivered / expected (%)', (r) => (100 * r.delivered) / Math.max(1, r.expected), 2),
      '100',
      (_x, r) => r.lost === 0 && r.delivered >= r.expected,
    ),
    goal(
      plain('events lost', (r) => r.lost, 0),
      '0',
      (x) => x === 0,
    ),
    goal(
      plain('checks run in window', (r) => r.checkRoundsInWindow, 0),
      `~${windowRounds}`,
      (x) => x <= windowRounds + 1,
    ),
    plain('socket release after clients leave (ms)', (r) => r.releaseMs, 0),
    goal(
      plain('listen queue overflows while opening', (r) => r.listenOverflows, 0),
      '0',
      (x) => x === 0,
    ),
    plain('connection set-up CPU per stream (us)', (r) => r.connectCpuUsPerStream, 0),
    plain('RSS before (MiB)', (r) => r.rssBeforeMiB, 1),
    plain('RSS peak with streams (MiB)', (r) => r.rssPeakMiB, 1),
    goal(
      plain('RSS after clients leave (MiB)', (r) => r.rssAfterMiB, 1),
      `<= ${NEAR_START_FACTOR} x before`,
      (x, r) => x <= r.rssBeforeMiB * NEAR_START_FACTOR,
    ),
    {
      label: 'RSS near before again after (s)',
      // NaN (not within --after) is null in the JSON.
      value: (r) => r.nearStartAfterS ?? Number.NaN,
      format: (x) => (Number.isFinite(x) ? x.toFixed(1) : `> ${settings.afterS}`),
      target: '',
    },
    ...(settings.scenario === 'full' ? fullRows() : []),
  ];
}

/** What the full scenario adds: the streams' filters, the events by type, the alerts. */
function fullRows(): Row[] {
  // Rows of results from before the full scenario existed read as n/a.
  const of =
    (value: (r: ServerResult) => number | null | undefined) =>
    (r: ServerResult): number | null =>
      value(r) ?? null;
  const plain = (label: string, value: (r: ServerResult) => number | null | undefined, digits = 0): Row => ({
    label,
    value: of(value),
    format: fmt(digits),
    target: '',
  });
  return [
    plain('streams filtered (?events=message,change)', (r) => r.filteredStreams),
    plain('snapshot size (KiB)', (r) => (r.snapshotBytes === undefined ? null : r.snapshotBytes / 1024), 1),
    plain('delivered in window: snapshots', (r) => r.snapshotsDelivered),
    plain('delivered in window: app events', (r) => r.appEventsDelivered),
    plain('delivered in window: change events', (r) => r.changesDelivered),
    plain('app events published in window', (r) => r.appEventsInWindow),
    plain('app event latency p50 (ms)', (r) => r.appLatencyP50Ms, 1),
    plain('app event latency p99 (ms)', (r) => r.appLatencyP99Ms, 1),
    plain('change events in window', (r) => r.changesInWindow),
    { ...plain('alerts received in window', (r) => r.alertsInWindow), ratio: false },
    {
      ...plain('events past a stream filter', (r) => r.filterLeaks),
      target: '0',
      meets: (x) => x === 0,
      ratio: false,
    },
  ];
}

export function ratio(row: Row, ours: ServerResult, other: ServerResult): number | null {
  if (row.ratio === false) return null;
  const a = row.value(ours);
  const b = row.value(other);
  return a !== null && b !== null && b !== 0 && Number.isFinite(a / b) ? a / b : null;
}

function ratioText(row: Row, ours: ServerResult, other: ServerResult): string {
  const x = ratio(row, ours, other);
  if (x === null) return '';
  return `${x >= 0.1 ? x.toFixed(2) : x >= 0.01 ? x.toFixed(3) : x.toPrecision(2)}x`;
}

/** A ratio column with both of its servers' results. */
export interface Compared {
  label: string;
  key: string;
  ours: ServerResult;
  other: ServerResult;
}

/**
 * The service whose targets the table judges (the full scenario's when it ran, else
 * status-stream's), and the ratio columns whose servers are both in the results.
 */
export function comparisons(results: readonly ServerResult[]): {
  primary: ServerResult | undefined;
  columns: Compared[];
} {
  const byName = (name: string): ServerResult | undefined => results.find((r) => r.name === name);
  const primary = byName('full') ?? byName('status-stream');
  const columns: Compared[] = [];
  for (const c of COMPARISONS) {
    const ours = byName(c.ours);
    const other = byName(c.other);
    if (ours && other) columns.push({ label: c.label, key: c.key, ours, other });
  }
  return { primary, columns };
}

/** ratios[column key][row label] = the column's ratio, to 4 decimals. */
export function ratiosFor(
  results: readonly ServerResult[],
  rows: readonly Row[],
): Record<string, Record<string, number | null>> {
  const ratios: Record<string, Record<string, number | null>> = {};
  for (const column of comparisons(results).columns) {
    const byRow: Record<string, number | null> = {};
    for (const row of rows) {
      const x = ratio(row, column.ours, column.other);
      byRow[row.label] = x === null ? null : Math.round(x * 10000) / 10000;
    }
    ratios[column.key] = byRow;
  }
  return ratios;
}

/** One ratio target of RATIO_TARGETS, judged on this run's results. */
export interface RatioVerdict {
  ratio: string;
  row: string;
  /** The ratio of the two medians (of the figures of one run without --repeat). */
  value: number | null;
  max: number;
  met: boolean;
  /** With --repeat: the ratio within each pass, the two servers' runs minutes apart. */
  byRun: (number | null)[];
}

/** The ratio targets whose column this run has; `runs`: every run, for the ratios pass by pass. */
export function ratioVerdicts(
  results: readonly ServerResult[],
  rows: readonly Row[],
  runs: readonly ServerResult[] = [],
): RatioVerdict[] {
  const columns = comparisons(results).columns;
  const verdicts: RatioVerdict[] = [];
  for (const target of RATIO_TARGETS) {
    const column = columns.find((c) => c.key === target.key);
    const row = rows.find((r) => r.label === target.row);
    if (column === undefined || row === undefined) continue;
    const value = ratio(row, column.ours, column.other);
    const ours = runs.filter((r) => r.name === column.ours.name);
    const others = runs.filter((r) => r.name === column.other.name);
    const byRun = ours.length > 1 ? ours.map((r, i) => (others[i] ? ratio(row, r, others[i]) : null)) : [];
    const met = value !== null && value <= target.max;
    verdicts.push({ ratio: column.label, row: row.label, value, max: target.max, met, byRun });
  }
  return verdicts;
}

/** The ratio targets as a Markdown table, with the ratios pass by pass when there are; '' when none. */
export function ratioTable(verdicts: readonly RatioVerdict[]): string {
  if (verdicts.length === 0) return '';
  const x = (v: number | null): string => (v === null ? 'n/a' : `${v.toFixed(2)}x`);
  const byRun = verdicts.some((v) => v.byRun.length > 0);
  const lines = verdicts.map(
    (v) =>
      `| ${v.ratio} | ${v.row} | ${x(v.value)} | <= ${v.max}x | ${v.met ? 'yes' : 'NO'} |` +
      `${byRun ? ` ${v.byRun.map(x).join(', ')} |` : ''}`,
  );
  const header = `| ratio | of | value | target | met |${byRun ? ' by run |' : ''}`;
  return [header, `|:--|:--|--:|--:|--:|${byRun ? ':--|' : ''}`, ...lines].join('\n');
}

/** The Markdown table: a row per figure, a column per server, then ratios, target and met. */
export function table(results: readonly ServerResult[], rows: readonly Row[]): string {
  const { primary, columns } = comparisons(results);
  const header = ['metric', ...results.map((r) => r.name), ...columns.map((c) => c.label), 'target'];
  if (primary) header.push('met');
  const body: string[][] = [];
  for (const row of rows) {
    const cells = [row.label];
    for (const r of results) {
      const v = row.value(r);
      cells.push(v === null ? 'n/a' : row.format(v, r));
    }
    for (const c of columns) cells.push(ratioText(row, c.ours, c.other));
    cells.push(row.target);
    if (primary) cells.push(metText(row, primary));
    body.push(cells);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((c) => (c[i] ?? '').length)));
  const pad = (c: string, i: number): string => {
    const width = widths[i] as number;
    return i === 0 ? c.padEnd(width) : c.padStart(width);
  };
  const line = (cells: string[]): string => `| ${cells.map(pad).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), sep, ...body.map(line)].join('\n');
}

function metText(row: Row, ours: ServerResult): string {
  const v = row.value(ours);
  if (row.meets === undefined || v === null) return '';
  return row.meets(v, ours) ? 'yes' : 'NO';
}

/** With --repeat: the figures the noise moves most, run by run. */
export function perRun(runs: readonly ServerResult[] | undefined): string {
  if (runs === undefined || runs.length <= new Set(runs.map((r) => r.name)).size) return '';
  const names = [...new Set(runs.map((r) => r.name))];
  const byServer = (name: string, value: (r: ServerResult) => number, digits: number): string =>
    `${name} ${runs
      .filter((r) => r.name === name)
      .map((r) => value(r).toFixed(digits))
      .join(', ')}`;
  const line = (label: string, value: (r: ServerResult) => number, digits: number): string =>
    `${label} by run: ${names.map((n) => byServer(n, value, digits)).join('; ')}\n`;
  return (
    line('latency p99 (ms)', (r) => r.latencyP99Ms, 1) +
    line('server CPU per delivered event (us)', (r) => r.cpuUsPerEvent, 1) +
    line('server memory per stream, peak (KiB)', (r) => r.memPerStreamKiB, 1) +
    line('other processes CPU in window (% of a core)', (r) => r.otherCpuPercentInWindow, 1)
  );
}

/** The whole printed report: a header line (settings, machine, Node), the tables, the per-run lines. */
export function render(report: Report): string {
  const { settings: s, machine: m } = report;
  const rows = rowsFor(s);
  const { columns } = comparisons(report.results);
  const legend = columns.map((c) => `${c.label} = ${c.ours.name}'s figure divided by ${c.other.name}'s`).join('; ');
  const ratios = ratioTable(ratioVerdicts(report.results, rows, report.runs));
  return (
    `${s.clients} streams, one event per ${s.intervalMs} ms, ${s.seconds} s steady window; ` +
    `${String(m.cores)} x ${String(m.cpu)}, ${String(m.memGiB)} GiB, ${String(m.os)}, ` +
    `${s.image === undefined ? 'servers' : `status-stream in its image, built on ${s.image.base} (Node ${s.image.nodeVersion}, ${s.image.libc}); the other servers`}` +
    ` on Node ${String(m.serverNode)}${m.serverNodePath === undefined ? '' : ` (${String(m.serverNodePath)})`}` +
    `${s.statusStreamCommand === undefined ? '' : `, status-stream as \`${s.statusStreamCommand}\``}` +
    '; load generator on the same machine' +
    `${(s.repeat ?? 1) > 1 ? `; medians of ${s.repeat} runs each` : ''}` +
    `${s.scenario === 'full' ? `\n${fullScenario(s)}` : ''}\n\n` +
    `${table(report.results, rows)}\n\n` +
    `${legend === '' ? '' : `${legend}\n`}` +
    `${ratios === '' ? '' : `\n${ratios}\n\n`}` +
    perRun(report.runs)
  );
}

/** The full scenario's checks as a report says them; older reports had the defaults. */
export function checkLoadOf(s: Settings): CheckLoad {
  return { count: s.checks ?? FULL_CHECKS, intervalMs: s.checkIntervalMs ?? CHECK_INTERVAL_MS };
}

/** One line on what the full scenario turns on (bench/full-helper.ts). */
export function fullScenario(s: Settings): string {
  const { count, intervalMs } = checkLoadOf(s);
  return (
    `full: ${count} HTTP checks with conditions (status, body, JSON path, degradedMs; ${criticalChecks(count)} critical; ` +
    'flap suppression), ' +
    `each every ${intervalMs} ms, ` +
    'history in STATE_DIR, two alert receivers, one app event a second via POST /publish, ' +
    'half the streams with ?events=message,change; floor-full writes the same events by the least means'
  );
}
