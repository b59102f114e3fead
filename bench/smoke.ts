// bench/smoke.ts: `npm run bench` end to end at a small scale, both scenarios: the servers,
// the load generator, the full scenario's helper and the report, so that the benchmark
// cannot rot between the runs that fill bench/README.md. CI runs it after `npm test` (it
// takes under a minute, so it is not part of the unit suites; bench/*.test.ts test the
// bench's modules one by one).
// It checks that every figure is measured and that each server is what its file says
// (one round per interval for status-stream and the floor, one per client for naive),
// never how fast anything is: timing belongs to the benchmark itself.
// Run: node --import tsx bench/smoke.ts (exit code 0: passed)

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, withDeadline } from '../tests/helpers.ts';
import type { ServerResult } from './measure.ts';

const CLIENTS = 40;
const INTERVAL_MS = 200;
const SECONDS = 1;
/** Less wait before the window than the bench's 2 s: 40 streams settle at once. */
const SETTLE_MS = 300;

type Outcome = { code: number | null; stdout: string; stderr: string };

function runBench(args: string[], deadlineMs: number): Promise<Outcome> {
  return withDeadline(
    new Promise((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
      child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
      // SIGINT: run.ts then kills every server and load generator it started, by PID.
      const timer = setTimeout(() => child.kill('SIGINT'), deadlineMs - 2000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    }),
    deadlineMs,
    'bench run',
  );
}

const TITLE =
  'npm run bench measures status-stream, the naive baseline and the floor in one run, twice, and reports medians';
/** A loaded 2-core machine took 100 s; the bench stops its children by PID when interrupted at the deadline. */
const DEADLINE_MS = 240_000;

test(TITLE, { timeout: DEADLINE_MS + 10_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-test-'));
  try {
    const out = join(dir, 'run.json');
    const args = [
      ...['--clients', String(CLIENTS), '--interval', String(INTERVAL_MS), '--seconds', String(SECONDS)],
      ...['--after', '0', '--concurrency', String(CLIENTS), '--settle', String(SETTLE_MS), '--repeat', '2'],
      ...['--out', out],
    ];
    const { code, stdout, stderr } = await runBench(args, DEADLINE_MS);
    assert.equal(code, 0, `bench failed:\n${stderr}`);

    const report = JSON.parse(readFileSync(out, 'utf8')) as {
      results: ServerResult[];
      runs: ServerResult[];
      ratios: Record<string, Record<string, number | null>>;
    };
    assert.deepEqual(
      report.results.map((r) => r.name),
      ['status-stream', 'naive', 'floor'],
    );
    // The servers take turns, and each figure of the result is the median of a server's runs.
    const names = ['status-stream', 'naive', 'floor'];
    assert.deepEqual(
      report.runs.map((r) => r.name),
      [...names, ...names],
    );
    for (const r of report.results) {
      const runs = report.runs.filter((run) => run.name === r.name);
      const [a, b] = runs.map((run) => run.latencyP99Ms) as [number, number];
      assert.equal(r.latencyP99Ms, Math.round(((a + b) / 2) * 1000) / 1000, `${r.name}: median p99 of ${a} and ${b}`);
    }
    // The header names the Node that ran the servers, and how status-stream was started.
    const node = `servers on Node ${process.version} (${process.execPath}), status-stream as \`node `;
    assert.ok(stdout.includes(node), stdout.slice(0, 400));
    const twoRuns = '[\\d.]+, [\\d.]+';
    const servers = `status-stream ${twoRuns}; naive ${twoRuns}; floor ${twoRuns}`;
    const byRun = new RegExp(`^latency p99 \\(ms\\) by run: ${servers}$`, 'm');
    assert.match(stdout, byRun);
    const windowRounds = (SECONDS * 1000) / INTERVAL_MS;
    for (const r of report.runs) {
      assert.equal(r.withFirstEvent, CLIENTS, `${r.name}: every stream got a first event`);
      assert.equal(r.lost, 0, `${r.name}: no event lost`);
      const delivered = `${r.name}: delivered ${r.delivered} of ${r.expected}`;
      assert.ok(r.delivered > 0 && r.expected === CLIENTS * windowRounds, delivered);
      for (const key of ['cpuUsPerEvent', 'latencyP99Ms', 'releaseMs'] as const) {
        assert.ok(Number.isFinite(r[key]) && r[key] >= 0, `${r.name}: ${key} is measured (${r[key]})`);
      }
      // At 40 streams a garbage collection between two RSS readings outweighs the streams,
      // so memory per stream may come out below zero; it must still be measured.
      const memory = `${r.name}: memPerStreamKiB is measured (${r.memPerStreamKiB})`;
      assert.ok(Number.isFinite(r.memPerStreamKiB), memory);
      assert.equal(r.listenOverflows, 0, `${r.name}: no listen queue overflow at ${CLIENTS} connections`);
      assert.equal(r.fdsAfter, r.fdsBefore, `${r.name}: every socket released`);
    }
    const [ours, naive, floor] = report.results as [ServerResult, ServerResult, ServerResult];
    // One shared round per interval, whatever the number of streams, delivered to all of them.
    for (const shared of [ours, floor]) {
      assert.equal(shared.delivered, shared.expected, `${shared.name}: every event delivered`);
      const rounds = shared.checkRoundsInWindow ?? -1;
      assert.ok(Math.abs(rounds - windowRounds) <= 1, `${shared.name}: ${rounds} rounds in the window`);
    }

    assert.ok(naive.delivered > 0);
    // Ratios to both baselines, in the JSON and as columns of the table.
    const label = 'latency p99 (ms)';
    const ratio = (other: ServerResult): number => Math.round((ours.latencyP99Ms / other.latencyP99Ms) * 10000) / 10000;
    assert.equal(report.ratios.naive?.[label], ratio(naive));
    assert.equal(report.ratios.floor?.[label], ratio(floor));
    const header = stdout.split('\n').find((line) => line.startsWith('| metric'));
    const columns = (header ?? '')
      .split('|')
      .map((cell) => cell.trim())
      .filter((cell) => cell !== '');
    assert.deepEqual(columns, ['metric', 'status-stream', 'naive', 'floor', '/ naive', '/ floor', 'target', 'met']);
    assert.match(stdout, /^\| latency p99 \(ms\) +\|/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const FULL_TITLE =
  'the full scenario measures status-stream bare and with every feature on, and the floor, and reports full / bare';
const FULL_DEADLINE_MS = 120_000;
const FULL_INTERVAL_MS = 500;
const FULL_SECONDS = 2;

test(FULL_TITLE, { timeout: FULL_DEADLINE_MS + 10_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-full-test-'));
  try {
    const out = join(dir, 'run.json');
    const args = [
      ...['--scenario', 'full', '--clients', String(CLIENTS), '--interval', String(FULL_INTERVAL_MS)],
      ...['--seconds', String(FULL_SECONDS), '--after', '0', '--concurrency', String(CLIENTS)],
      ...['--settle', String(SETTLE_MS), '--out', out],
    ];
    const { code, stdout, stderr } = await runBench(args, FULL_DEADLINE_MS);
    assert.equal(code, 0, `bench failed:\n${stderr}`);
    const report = JSON.parse(readFileSync(out, 'utf8')) as {
      results: ServerResult[];
      ratios: Record<string, Record<string, number | null>>;
      ratioTargets: { ratio: string; row: string; value: number | null; max: number; met: boolean }[];
    };
    assert.deepEqual(
      report.results.map((r) => r.name),
      ['status-stream', 'full', 'floor-full'],
    );
    const [bare, full, floor] = report.results as [ServerResult, ServerResult, ServerResult];
    const rounds = (FULL_SECONDS * 1000) / FULL_INTERVAL_MS;
    for (const r of report.results) {
      assert.equal(r.withFirstEvent, CLIENTS, `${r.name}: every stream got a first event`);
      assert.equal(r.lost, 0, `${r.name}: no event lost`);
      assert.equal(r.delivered, r.expected, `${r.name}: every event delivered`);
      assert.equal(r.filterLeaks, 0, `${r.name}: no event past a stream's filter`);
      // Every stream, filtered or not, gets every snapshot.
      assert.equal(r.snapshotsDelivered, CLIENTS * rounds, `${r.name}: ${r.snapshotsDelivered} snapshots`);
      const sum = r.snapshotsDelivered + r.appEventsDelivered + r.changesDelivered;
      assert.equal(r.delivered, sum, `${r.name}: delivered counts every type`);
      assert.equal(r.fdsAfter, r.fdsBefore, `${r.name}: every socket released`);
    }
    assert.equal(bare.filteredStreams, 0);
    assert.equal(bare.appEventsDelivered, 0);
    for (const r of [full, floor]) {
      assert.equal(r.filteredStreams, CLIENTS / 2, `${r.name}: half the streams filtered`);
      assert.ok(r.appEventsInWindow >= 1, `${r.name}: ${r.appEventsInWindow} app events in the window`);
      // App events reach the unfiltered half only; change events reach every stream.
      assert.equal(r.appEventsDelivered, r.appEventsInWindow * (CLIENTS / 2), `${r.name}: app events delivered`);
      assert.equal(r.changesDelivered, r.changesInWindow * CLIENTS, `${r.name}: change events delivered`);
    }
    // The helper's app published through POST /publish, its targets were checked, its receivers got alerts.
    const world = full.world;
    assert.ok(world !== null && world.published > 0 && world.publishFailed === 0, JSON.stringify(world));
    assert.ok(world.targetRequests >= 50, `${world.targetRequests} requests to the checks' targets`);
    assert.ok((world.alerts[0] ?? 0) > 0, `alerts: ${JSON.stringify(world.alerts)}`);
    // floor-full does the same job: the app's events through its POST /publish, the same targets checked.
    const floorWorld = floor.world;
    assert.ok(
      floorWorld !== null && floorWorld.published > 0 && floorWorld.publishFailed === 0,
      JSON.stringify(floorWorld),
    );
    assert.ok(floorWorld.targetRequests >= 10, `${floorWorld.targetRequests} requests from floor-full's checks`);
    // The floor writes snapshots the size of the full service's.
    assert.ok(Math.abs(floor.snapshotBytes - full.snapshotBytes) <= 0.02 * full.snapshotBytes);
    assert.ok(full.snapshotBytes > 10 * bare.snapshotBytes, `${full.snapshotBytes} vs ${bare.snapshotBytes} bytes`);

    const label = 'server CPU per delivered event (us)';
    // At 40 streams a server can spend less than one clock tick in the window: no ratio then (null).
    const ratio = (a: ServerResult, b: ServerResult): number | null =>
      b.cpuUsPerEvent === 0 ? null : Math.round((a.cpuUsPerEvent / b.cpuUsPerEvent) * 10000) / 10000;
    assert.equal(report.ratios.bare?.[label], ratio(full, bare));
    assert.equal(report.ratios['floor-full']?.[label], ratio(full, floor));
    assert.deepEqual(
      report.ratioTargets.map((t) => `${t.ratio}: ${t.row} <= ${t.max}`),
      [
        'full / bare: server CPU per delivered event (us) <= 1.2',
        'full / bare: server memory per stream, peak (KiB) <= 1.1',
        'full / floor: server CPU per delivered event (us) <= 1.15',
        'full / floor: latency p99 (ms) <= 1.2',
      ],
    );
    const header = stdout.split('\n').find((line) => line.startsWith('| metric'));
    const columns = (header ?? '')
      .split('|')
      .map((cell) => cell.trim())
      .filter((cell) => cell !== '');
    const names = ['metric', 'status-stream', 'full', 'floor-full', 'full / bare', 'full / floor', 'target', 'met'];
    assert.deepEqual(columns, names);
    assert.match(stdout, /^\| full \/ bare \| server memory per stream, peak \(KiB\) \|/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
