// `npm run bench` end to end at a small scale: the three servers, the load generator and
// the report, so that the benchmark cannot rot between the runs that fill the README.
// It checks that every figure is measured and that each server is what its file says
// (one round per interval for status-stream and the floor, one per client for naive),
// never how fast anything is: timing belongs to the benchmark itself.
// Run: node --import tsx --test bench/run.test.ts

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, withDeadline } from '../tests/helpers.ts';

const CLIENTS = 40;
const INTERVAL_MS = 200;
const SECONDS = 1;

interface Result {
  name: string;
  withFirstEvent: number;
  delivered: number;
  expected: number;
  lost: number;
  checkRoundsInWindow: number | null;
  cpuUsPerEvent: number;
  memPerStreamKiB: number;
  latencyP99Ms: number;
  releaseMs: number;
  listenOverflows: number;
  fdsBefore: number;
  fdsAfter: number;
}

function runBench(args: string[], deadlineMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return withDeadline(
    new Promise((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
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

test('npm run bench measures status-stream, the naive baseline and the floor in one run, twice, and reports medians', { timeout: 150_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-test-'));
  try {
    const out = join(dir, 'run.json');
    const args = ['--clients', String(CLIENTS), '--interval', String(INTERVAL_MS), '--seconds', String(SECONDS), '--after', '0', '--concurrency', String(CLIENTS), '--repeat', '2', '--out', out];
    const { code, stdout, stderr } = await runBench(args, 140_000);
    assert.equal(code, 0, `bench failed:\n${stderr}`);

    const report = JSON.parse(readFileSync(out, 'utf8')) as { results: Result[]; runs: Result[]; ratios: Record<string, Record<string, number | null>> };
    assert.deepEqual(report.results.map((r) => r.name), ['status-stream', 'naive', 'floor']);
    // The servers take turns, and each figure of the result is the median of a server's runs.
    assert.deepEqual(report.runs.map((r) => r.name), ['status-stream', 'naive', 'floor', 'status-stream', 'naive', 'floor']);
    for (const r of report.results) {
      const [a, b] = report.runs.filter((run) => run.name === r.name).map((run) => run.latencyP99Ms) as [number, number];
      assert.equal(r.latencyP99Ms, Math.round(((a + b) / 2) * 1000) / 1000, `${r.name}: median p99 of ${a} and ${b}`);
    }
    assert.match(stdout, /^latency p99 \(ms\) by run: status-stream [\d.]+, [\d.]+; naive [\d.]+, [\d.]+; floor [\d.]+, [\d.]+$/m);
    const windowRounds = (SECONDS * 1000) / INTERVAL_MS;
    for (const r of report.runs) {
      assert.equal(r.withFirstEvent, CLIENTS, `${r.name}: every stream got a first event`);
      assert.equal(r.lost, 0, `${r.name}: no event lost`);
      assert.ok(r.delivered > 0 && r.expected === CLIENTS * windowRounds, `${r.name}: delivered ${r.delivered} of ${r.expected}`);
      for (const key of ['cpuUsPerEvent', 'memPerStreamKiB', 'latencyP99Ms', 'releaseMs'] as const) {
        assert.ok(Number.isFinite(r[key]) && r[key] >= 0, `${r.name}: ${key} is measured (${r[key]})`);
      }
      assert.equal(r.listenOverflows, 0, `${r.name}: no listen queue overflow at ${CLIENTS} connections`);
      assert.equal(r.fdsAfter, r.fdsBefore, `${r.name}: every socket released`);
    }
    const [ours, naive, floor] = report.results as [Result, Result, Result];
    // One shared round per interval, whatever the number of streams, delivered to all of them.
    for (const shared of [ours, floor]) {
      assert.equal(shared.delivered, shared.expected, `${shared.name}: every event delivered`);
      assert.ok(Math.abs((shared.checkRoundsInWindow ?? -1) - windowRounds) <= 1, `${shared.name}: ${shared.checkRoundsInWindow} rounds in the window`);
    }

    assert.ok(naive.delivered > 0);
    // Ratios to both baselines, in the JSON and as columns of the table.
    const label = 'latency p99 (ms)';
    assert.equal(report.ratios.naive?.[label], Math.round((ours.latencyP99Ms / naive.latencyP99Ms) * 10000) / 10000);
    assert.equal(report.ratios.floor?.[label], Math.round((ours.latencyP99Ms / floor.latencyP99Ms) * 10000) / 10000);
    const header = stdout.split('\n').find((line) => line.startsWith('| metric'));
    const columns = (header ?? '').split('|').map((cell) => cell.trim()).filter((cell) => cell !== '');
    assert.deepEqual(columns, ['metric', 'status-stream', 'naive', 'floor', '/ naive', '/ floor', 'target', 'met']);
    assert.match(stdout, /^\| latency p99 \(ms\) +\|/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
