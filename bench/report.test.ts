// The bench's report (bench/report.ts), its medians (bench/measure.ts) and the slopes
// between two runs (bench/marginal.ts), from results made up here: columns, ratios,
// targets, "not within" cells, the per-run lines, marginal costs and intercepts.
// Run: node --import tsx --test bench/report.test.ts

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { marginals, marginalTable } from './marginal.ts';
import { median, medianResult, type ServerResult } from './measure.ts';
import { perRun, ratiosFor, render, rowsFor, type Settings, table } from './report.ts';

const SETTINGS: Settings = { clients: 100, intervalMs: 1000, seconds: 20, afterS: 30, repeat: 1 };

function result(name: string, figures: Partial<ServerResult> = {}): ServerResult {
  return {
    name,
    clients: 100,
    withFirstEvent: 100,
    allFirstEventsS: 1.5,
    firstEventP99Ms: 900,
    memPerStreamKiB: 8,
    memPerStreamMeanKiB: 7.5,
    memPerStreamAtReadyKiB: 7,
    cpuUsPerEvent: 12,
    cpuPercentInWindow: 10,
    kernelSharePercent: 60,
    loadgenCpuPercentInWindow: 11,
    otherCpuPercentInWindow: 2,
    connectCpuUsPerStream: 150,
    latencyP50Ms: 60,
    latencyP99Ms: 120,
    latencyMaxMs: 140,
    delivered: 2000,
    expected: 2000,
    lost: 0,
    checkRoundsInWindow: 20,
    listenOverflows: 0,
    releaseMs: 500,
    rssBeforeMiB: 80,
    rssPeakMiB: 160,
    rssAfterMiB: 100,
    nearStartAfterS: 20,
    fdsBefore: 20,
    fdsAfter: 20,
    cpuProfile: null,
    filteredStreams: 0,
    snapshotsDelivered: 2000,
    appEventsDelivered: 0,
    changesDelivered: 0,
    appEventsInWindow: 0,
    changesInWindow: 0,
    filterLeaks: 0,
    snapshotBytes: 400,
    appLatencyP50Ms: Number.NaN,
    appLatencyP99Ms: Number.NaN,
    alertsInWindow: null,
    world: null,
    loadgen: {} as ServerResult['loadgen'],
    ...figures,
  };
}

const cells = (text: string, label: string): string[] => {
  const line = text.split('\n').find((l) => l.startsWith(`| ${label} `)) ?? '';
  return line
    .split('|')
    .slice(1, -1)
    .map((c) => c.trim());
};

test('the table has a column per server, a ratio column per baseline, the target and whether it is met', () => {
  const naive = result('naive', { cpuUsPerEvent: 120 });
  const results = [result('status-stream'), naive, result('floor', { cpuUsPerEvent: 10 })];
  const text = table(results, rowsFor(SETTINGS));
  const header = cells(text, 'metric');
  assert.deepEqual(header, ['metric', 'status-stream', 'naive', 'floor', '/ naive', '/ floor', 'target', 'met']);
  assert.deepEqual(cells(text, 'server CPU per delivered event (us)'), [
    'server CPU per delivered event (us)',
    '12.0',
    '120.0',
    '10.0',
    '0.10x',
    '1.20x',
    '<= 20',
    'yes',
  ]);
  // The machine's noise and the load generator get no ratio.
  assert.deepEqual(cells(text, 'other processes CPU in window (% of a core)').slice(4, 6), ['', '']);
  assert.deepEqual(cells(text, 'checks run in window').slice(-2), ['~20', 'yes']);
});

test('a missed target says NO, and a figure not reached in time is shown as beyond the time watched', () => {
  const ours = result('status-stream', {
    latencyP99Ms: 180,
    withFirstEvent: 90,
    allFirstEventsS: 30,
    nearStartAfterS: Number.NaN,
    checkRoundsInWindow: null,
  });
  const text = table([ours], rowsFor(SETTINGS));
  assert.deepEqual(cells(text, 'latency p99 (ms)').slice(-2), ['<= 150', 'NO']);
  assert.deepEqual(cells(text, 'all first events within (s)').slice(1), ['> 30', '<= 3', 'NO']);
  assert.deepEqual(cells(text, 'RSS near before again after (s)').slice(1, 2), ['> 30']);
  assert.deepEqual(cells(text, 'checks run in window').slice(1), ['n/a', '~20', '']);
});

test('a table without status-stream has no ratio and no met column', () => {
  const text = table([result('floor')], rowsFor(SETTINGS));
  assert.deepEqual(cells(text, 'metric'), ['metric', 'floor', 'target']);
});

test('ratios in the JSON are status-stream over each baseline, to four decimals, null where meaningless', () => {
  const ratios = ratiosFor([result('status-stream'), result('floor', { latencyP99Ms: 90 })], rowsFor(SETTINGS));
  assert.deepEqual(Object.keys(ratios), ['floor']);
  assert.equal(ratios.floor?.['latency p99 (ms)'], 1.3333);
  assert.equal(ratios.floor?.['load generator CPU in window (% of a core)'], null);
  assert.equal(ratios.floor?.['events lost'], null, '0 / 0 is no ratio');
});

test('the median of an even count is the mean of the middle two, and NaN counts as the largest', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([1, Number.NaN, 2]), 2);
  assert.ok(Number.isNaN(median([1, Number.NaN])));
});

test('medianResult takes the median of every numeric figure and the rest from the first run', () => {
  const runs = [
    result('status-stream', { latencyP99Ms: 100, cpuProfile: 'a' }),
    result('status-stream', { latencyP99Ms: 300 }),
    result('status-stream', { latencyP99Ms: 200 }),
  ];
  const m = medianResult(runs);
  assert.equal(m.latencyP99Ms, 200);
  assert.equal(m.cpuProfile, 'a');
  assert.equal(medianResult([runs[1] as ServerResult]), runs[1]);
  assert.throws(() => medianResult([]), /no runs/);
});

test('with --repeat the noisiest figures are printed run by run under the table', () => {
  const second = result('status-stream', { latencyP99Ms: 130.04 });
  const runs = [result('status-stream'), result('floor'), second, result('floor')];
  const lines = perRun(runs).split('\n');
  assert.equal(lines[0], 'latency p99 (ms) by run: status-stream 120.0, 130.0; floor 120.0, 120.0');
  assert.equal(lines.length, 5);
  assert.equal(perRun(runs.slice(0, 2)), '', 'one run each: nothing to add');
  assert.equal(perRun(undefined), '');
});

test('the report starts with the load, the machine and the Node that ran the servers', () => {
  const machine = { cores: 2, cpu: 'AMD EPYC', memGiB: 24, os: 'Linux 6.18', serverNode: 'v24.21.0' };
  const settings = { ...SETTINGS, repeat: 3 };
  const older = render({ settings, machine, results: [result('status-stream')] }).split('\n')[0] ?? '';
  assert.match(older, /^100 streams, one event per 1000 ms, 20 s steady window; 2 x AMD EPYC, 24 GiB, Linux 6\.18, /);
  assert.match(older, /servers on Node v24\.21\.0; load generator on the same machine; medians of 3 runs each$/);
  const now = render({
    settings: { ...settings, statusStreamCommand: 'node --max-semi-space-size=2 server.ts' },
    machine: { ...machine, serverNodePath: '/opt/node24/bin/node' },
    results: [result('status-stream')],
  });
  const header = now.split('\n')[0] ?? '';
  assert.ok(header.includes('servers on Node v24.21.0 (/opt/node24/bin/node), status-stream as `node '), header);
  assert.ok(header.includes('`node --max-semi-space-size=2 server.ts`; load generator on the same machine'), header);
  // The full scenario's line says its checks; a report from before --checks had the defaults.
  const fullLine = (extra: object): string =>
    render({ settings: { ...settings, scenario: 'full', ...extra }, machine, results: [result('full')] }).split(
      '\n',
    )[1] ?? '';
  assert.match(fullLine({}), /^full: 50 HTTP checks with conditions .*, each every 5000 ms, history in STATE_DIR/);
  assert.match(
    fullLine({ checks: 3, checkIntervalMs: 1000 }),
    /^full: 3 HTTP checks .*; 1 critical; .*, each every 1000 ms, /,
  );
});

test('two runs that differ in streams give each server its cost per extra stream and event, and what is left', () => {
  const at = (clients: number, name: string, growthMiB: number, cpuUsPerEvent: number, delivered: number) =>
    result(name, { clients, rssBeforeMiB: 100, rssPeakMiB: 100 + growthMiB, cpuUsPerEvent, delivered });
  // 20 s windows: status-stream 250 and 500 events a second, full 400 and 800.
  const small = {
    settings: { ...SETTINGS, clients: 5000, scenario: 'full' as const },
    machine: {},
    results: [at(5000, 'status-stream', 40, 14, 5000), at(5000, 'full', 50, 16, 8000)],
    runs: [
      at(5000, 'status-stream', 39, 14, 5000),
      at(5000, 'full', 50, 16, 8000),
      at(5000, 'status-stream', 41, 14, 5000),
      at(5000, 'full', 50, 16, 8000),
    ],
  };
  const large = {
    settings: { ...SETTINGS, clients: 10000, scenario: 'full' as const },
    machine: {},
    results: [at(10000, 'status-stream', 75, 12, 10000), at(10000, 'full', 87.5, 13, 16000)],
  };
  const [bare, full] = marginals(small, large);
  assert.equal(bare?.name, 'status-stream');
  // The mean of the small run's two passes: 40 MiB; 35 MiB more for 5,000 more streams.
  assert.equal(bare?.small.growthMiB, 40);
  assert.equal(bare?.memKiBPerStream, (35 * 1024) / 5000);
  assert.equal(bare?.memInterceptMiB, 5);
  // 3.5 and 6 ms a second of CPU at 250 and 500 events a second: 10 us per extra event, 1 ms/s left.
  assert.ok(Math.abs((bare?.cpuUsPerEvent ?? 0) - 10) < 1e-9);
  assert.ok(Math.abs((bare?.cpuInterceptMsPerS ?? 0) - 1) < 1e-9);
  // full: 6.4 and 10.4 ms/s at 400 and 800 events a second: 10 us an event and 2.4 ms/s left.
  assert.ok(Math.abs((full?.cpuUsPerEvent ?? 0) - 10) < 1e-9);
  assert.ok(Math.abs((full?.cpuInterceptMsPerS ?? 0) - 2.4) < 1e-9);
  assert.equal(full?.memInterceptMiB, 12.5);
  const text = marginalTable([bare, full].filter((m) => m !== undefined));
  assert.ok(
    text.includes('| full | 5000 → 10000 | 400 → 800 | 6.4 → 10.4 | 50.0 → 87.5 | 10.00 | 7.68 | 2.4 | 12.5 |'),
    text,
  );
  assert.ok(text.endsWith('full / bare: CPU per extra event 1.00x, memory per extra stream 1.07x'), text);
  assert.throws(() => marginals(large, small), /fewer streams/);
  assert.throws(
    () => marginals(small, { ...large, settings: { ...large.settings, seconds: 60 } }),
    /differ in seconds/,
  );
  assert.throws(
    () => marginals(small, { ...large, settings: { ...large.settings, scenario: 'bare' } }),
    /differ in scenario/,
  );
  // A report without `checks` had the default 50.
  assert.throws(
    () => marginals(small, { ...large, settings: { ...large.settings, checks: 3 } }),
    /differ in checks \(50 and 3\)/,
  );
  assert.equal(marginals(small, { ...large, settings: { ...large.settings, checks: 50 } }).length, 2);
});

test('bench/marginal.ts prints the table of two saved runs, and a bad pair as one line and exit code 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-marginal-'));
  try {
    const save = (file: string, clients: number, growthMiB: number): string => {
      const runs = [result('status-stream', { clients, rssBeforeMiB: 100, rssPeakMiB: 100 + growthMiB })];
      writeFileSync(
        join(dir, file),
        JSON.stringify({ settings: { ...SETTINGS, clients }, machine: {}, results: runs }),
      );
      return join(dir, file);
    };
    const small = save('small.json', 5000, 40);
    const large = save('large.json', 10000, 75);
    const script = fileURLToPath(new URL('./marginal.ts', import.meta.url));
    const run = (...files: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', script, ...files], { encoding: 'utf8' });
    const ok = run(small, large);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^\| server \| streams \|/);
    assert.match(ok.stdout, /\| status-stream \| 5000 → 10000 \| .* \| 40\.0 → 75\.0 \| .* \| 7\.17 \| /);
    for (const [files, message] of [
      [[small], /give two reports/],
      [[large, small], /fewer streams than the second \(10000, 5000\)/],
      [[small, join(dir, 'missing.json')], /ENOENT/],
    ] as const) {
      const r = run(...files);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
