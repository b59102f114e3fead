// The bench's report (bench/report.ts) and its medians (bench/measure.ts), from results
// made up here: columns, ratios, targets, "not within" cells and the per-run lines.
// Run: node --import tsx --test bench/report.test.ts

import assert from 'node:assert/strict';
import { test } from 'node:test';
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
});
