// The full scenario's parts one by one: the CONFIG_FILE it writes (checked by the service
// itself), the flapping target, which streams the load generator filters, the floor's filter,
// the image mode's docker arguments, and the ratio targets of the report.
// The whole scenario end to end is bench/smoke.ts. Run: node --import tsx --test bench/full.test.ts

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../tests/helpers.ts';
import { takesAppEvent } from './floor-server.ts';
import { FLAP_HALF_PERIOD_MS, FULL_CHECKS, flapperDown, fullConfig } from './full-helper.ts';
import { NODE_IDENTITY_SCRIPT, parseEnvLines, runArgs } from './image.ts';
import { isFiltered } from './loadgen.ts';
import type { ServerResult } from './measure.ts';
import { ratioTable, ratioVerdicts, rowsFor } from './report.ts';

interface Check {
  name: string;
  url: string;
  critical?: boolean;
  failuresToDown?: number;
  intervalMs?: number;
  degradedMs?: number;
  expect?: Record<string, unknown>;
}

test('the full scenario configures 50 checks with conditions and two alert receivers, and the service accepts it', () => {
  const text = fullConfig(8001, [8002, 8003]);
  const config = JSON.parse(text) as { checks: Check[]; alerts: { url: string; format: string }[] };
  assert.equal(config.checks.length, FULL_CHECKS);
  assert.equal(new Set(config.checks.map((c) => c.name)).size, FULL_CHECKS);
  assert.ok(config.checks.every((c) => c.url.startsWith('http://127.0.0.1:8001/')));
  assert.equal(config.checks.filter((c) => c.critical).length, 3);
  assert.ok(config.checks.filter((c) => c.failuresToDown === 2).length >= FULL_CHECKS / 2);
  for (const condition of ['status', 'bodyContains', 'json']) {
    assert.ok(
      config.checks.some((c) => c.expect?.[condition] !== undefined),
      condition,
    );
  }
  assert.ok(config.checks.some((c) => c.degradedMs !== undefined));
  assert.deepEqual(
    config.alerts.map((a) => [a.url, a.format]),
    [
      ['http://127.0.0.1:8002/hook', 'json'],
      ['http://127.0.0.1:8003/services/T0/B0/x', 'slack'],
    ],
  );
  const dir = mkdtempSync(join(tmpdir(), 'bench-full-config-'));
  try {
    const file = join(dir, 'config.json');
    writeFileSync(file, text);
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'server.ts', '--check-config'], {
      cwd: ROOT,
      env: { ...process.env, CONFIG_FILE: file, CHECKS: '' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--checks and --check-interval shape the checks: the last one flaps, the one before is slow', () => {
  const config = JSON.parse(fullConfig(8001, [8002, 8003], { count: 3, intervalMs: 1000 })) as { checks: Check[] };
  assert.deepEqual(
    config.checks.map((c) => [c.name, c.url.replace(/^http:\/\/127\.0\.0\.1:8001/, ''), c.intervalMs]),
    [
      ['svc-00', '/health/0', 1000],
      ['svc-01', '/slow/1', 1000],
      ['svc-02', '/flap/2', 1000],
    ],
  );
  // Only the first is critical: a critical flapper would take the overall status down and back.
  assert.deepEqual(
    config.checks.map((c) => c.critical === true),
    [true, false, false],
  );
  assert.throws(() => fullConfig(8001, [8002, 8003], { count: 2, intervalMs: 1000 }), /at least 3 checks, got 2/);
});

test('the flapping target answers 503 every other half period', () => {
  const start = 10 * FLAP_HALF_PERIOD_MS;
  assert.equal(flapperDown(start), false);
  assert.equal(flapperDown(start + FLAP_HALF_PERIOD_MS - 1), false);
  assert.equal(flapperDown(start + FLAP_HALF_PERIOD_MS), true);
  assert.equal(flapperDown(start + 2 * FLAP_HALF_PERIOD_MS), false);
});

test('the load generator filters exactly the share of streams asked for, spread over them', () => {
  const filtered = (n: number, share: number): boolean[] => Array.from({ length: n }, (_, i) => isFiltered(i, share));
  assert.deepEqual(filtered(6, 0.5), [false, true, false, true, false, true]);
  assert.equal(filtered(10_000, 0.5).filter(Boolean).length, 5000);
  assert.equal(filtered(1000, 0.25).filter(Boolean).length, 250);
  assert.equal(filtered(100, 0).filter(Boolean).length, 0);
  assert.equal(filtered(100, 1).filter(Boolean).length, 100);
});

test('the floor sends its app event to streams without a filter or whose filter names it', () => {
  assert.equal(takesAppEvent('/events'), true);
  assert.equal(takesAppEvent('/events?events='), true);
  assert.equal(takesAppEvent('/events?events=message,change'), false);
  assert.equal(takesAppEvent('/events?events=message,deploy'), true);
  assert.equal(takesAppEvent('/events?x=1&events=deploy'), true);
});

test('the image runs with host networking on 127.0.0.1, the bench open-files limit, and its mounts', () => {
  const launch = {
    name: 'full',
    port: 4321,
    env: { STATUS_INTERVAL_MS: '1000', PORT: '1', HOST: '0.0.0.0' },
    mounts: [
      { host: '/tmp/w', container: '/bench-world' },
      { host: '/tmp/w/state', container: '/var/lib/status-stream', rw: true },
    ],
    nofile: 20_000,
    startTimeoutMs: 1000,
  };
  assert.deepEqual(runArgs({ tag: 'img:1' }, 'c1', launch), [
    ...['run', '-d', '--name', 'c1', '--network', 'host', '--ulimit', 'nofile=20000:20000'],
    ...['-e', 'STATUS_INTERVAL_MS=1000', '-e', 'PORT=4321', '-e', 'HOST=127.0.0.1'],
    ...['-v', '/tmp/w:/bench-world:ro', '-v', '/tmp/w/state:/var/lib/status-stream'],
    'img:1',
  ]);
  assert.deepEqual(parseEnvLines('[log] noise\nDOCKER=/usr/bin/docker\nDOCKER_HOST=\nNODE_BASE=b:24\n'), {
    DOCKER: '/usr/bin/docker',
    DOCKER_HOST: '',
    NODE_BASE: 'b:24',
  });
  // The identity script names this Node and its C library.
  const r = spawnSync(process.execPath, ['-e', NODE_IDENTITY_SCRIPT], { encoding: 'utf8', timeout: 10_000 });
  assert.match(r.stdout.trim(), new RegExp(`^${process.version.replace(/\./g, '\\.')} (glibc \\d+\\.\\d+|musl)$`));
});

test('the ratio targets judge full / bare and full / floor, and only those the run measured', () => {
  const settings = { clients: 100, intervalMs: 1000, seconds: 20, afterS: 30, scenario: 'full' as const };
  const result = (name: string, cpuUsPerEvent: number, memPerStreamKiB: number, latencyP99Ms: number) =>
    ({ name, cpuUsPerEvent, memPerStreamKiB, latencyP99Ms }) as ServerResult;
  const results = [result('status-stream', 10, 8, 100), result('full', 11, 9, 110), result('floor-full', 10, 5, 100)];
  const verdicts = ratioVerdicts(results, rowsFor(settings));
  assert.deepEqual(
    verdicts.map((v) => [v.ratio, v.row, v.value === null ? null : Math.round(v.value * 1000) / 1000, v.met]),
    [
      ['full / bare', 'server CPU per delivered event (us)', 1.1, true],
      ['full / bare', 'server memory per stream, peak (KiB)', 1.125, false],
      ['full / floor', 'server CPU per delivered event (us)', 1.1, true],
      ['full / floor', 'latency p99 (ms)', 1.1, true],
    ],
  );
  assert.match(
    ratioTable(verdicts),
    /^\| full \/ bare \| server memory per stream, peak \(KiB\) \| 1\.13x \| <= 1\.1x \| NO \|$/m,
  );
  // With --repeat, the ratio within each pass too.
  const runs = [
    ...results,
    result('status-stream', 20, 8, 100),
    result('full', 22, 8, 120),
    result('floor-full', 20, 8, 100),
  ];
  const [cpu] = ratioVerdicts(results, rowsFor(settings), runs);
  assert.deepEqual(
    cpu?.byRun.map((x) => (x === null ? null : Math.round(x * 1000) / 1000)),
    [1.1, 1.1],
  );
  assert.match(
    ratioTable(ratioVerdicts(results, rowsFor(settings), runs)),
    /\| by run \|\n.*\n\| full \/ bare \| server CPU per delivered event \(us\) \| 1\.10x \| <= 1\.2x \| yes \| 1\.10x, 1\.10x \|/,
  );
  assert.equal(ratioVerdicts([result('status-stream', 10, 8, 100)], rowsFor(settings)).length, 0);
  assert.equal(ratioTable([]), '');
});
