// `npm run bench`'s command line (bench/run.ts): flags, the servers it measures and how
// it runs them, and the one-line errors. The whole bench end to end is bench/smoke.ts.
// Run: node --import tsx --test bench/run.test.ts

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../tests/helpers.ts';
import { parseOptions, serverSpecs, startNodeArgs, stripsTypes } from './run.ts';

/** `npm run bench -- ...args` as a child, bounded. */
function bench(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('the defaults are 10,000 streams, one event a second, a 20 s window, a 30 s watch after, on this Node', () => {
  const o = parseOptions([]);
  assert.deepEqual(
    [o.clients, o.intervalMs, o.seconds, o.afterMaxMs, o.repeat, o.concurrency],
    [10_000, 1000, 20, 30_000, 1, 2000],
  );
  assert.equal(o.serverNode, process.execPath);
  assert.equal(o.serverNodeVersion, process.version);
  assert.deepEqual(o.loaderArgs, stripsTypes(process.version) ? [] : ['--import', 'tsx']);
  assert.equal(o.heartbeatMs, undefined);
});

test('status-stream runs with the node flags of npm start, then --node-arg, and its own environment', () => {
  const o = parseOptions(['--clients', '50', '--node-arg=--max-old-space-size=64', '--server-env', 'RETRY_MS=5000']);
  const [ours, naive, floor] = serverSpecs(o);
  assert.deepEqual([ours?.name, naive?.name, floor?.name], ['status-stream', 'naive', 'floor']);
  assert.deepEqual(ours?.nodeArgs, [...startNodeArgs(ROOT), '--max-old-space-size=64']);
  assert.equal(ours?.env.MAX_CLIENTS, '1050');
  assert.equal(ours?.env.RETRY_MS, '5000');
  assert.equal(naive?.rounds, 'per-client');
  assert.deepEqual(floor?.nodeArgs, []);
});

test('the full scenario measures status-stream bare, with every feature on, and the floor doing the same job', () => {
  const o = parseOptions(['--scenario', 'full', '--clients', '50']);
  const [bare, full, floor] = serverSpecs(o);
  assert.deepEqual([bare?.name, full?.name, floor?.name], ['status-stream', 'full', 'floor-full']);
  // The same service, the same node flags and settings; full adds its world and half the streams filtered.
  assert.deepEqual(full?.nodeArgs, bare?.nodeArgs);
  assert.deepEqual(full?.env, bare?.env);
  assert.equal(bare?.world, undefined);
  assert.equal(full?.world, true);
  assert.equal(full?.filteredShare, 0.5);
  assert.equal(floor?.filteredShare, 0.5);
  // floor-full lives in the same world: the same targets, receivers, and app publishing to it.
  assert.equal(floor?.world, true);
  assert.equal(floor?.env.FLOOR_CHANGE_EVERY_MS, '10000');
  assert.ok(Number(floor?.env.FLOOR_SNAPSHOT_CHARS) > 1000);
  assert.equal(serverSpecs(o)[0]?.image, null);
  // 50 checks, each every 5 s, unless --checks and --check-interval say otherwise.
  assert.deepEqual(o.checks, { count: 50, intervalMs: 5000 });
  const fewer = parseOptions(['--scenario', 'full', '--checks', '3', '--check-interval', '1000']);
  assert.deepEqual(fewer.checks, { count: 3, intervalMs: 1000 });
});

test("npm start's node flags are read from package.json, without tsx's --import and the script", () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-start-'));
  try {
    const write = (start: string): void =>
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ scripts: { start } }));
    write('node --max-semi-space-size=2 --import tsx server.ts --flag');
    assert.deepEqual(startNodeArgs(dir), ['--max-semi-space-size=2']);
    write('node --import=tsx --expose-gc server.ts');
    assert.deepEqual(startNodeArgs(dir), ['--expose-gc']);
    write('tsx server.ts');
    assert.deepEqual(startNodeArgs(dir), []);
    assert.deepEqual(startNodeArgs(join(dir, 'missing')), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Node strips types itself from 22.18 and 23.6 on; older ones load tsx', () => {
  assert.deepEqual(['v20.20.2', 'v22.17.0', 'v22.18.0', 'v23.5.0', 'v23.6.0', 'v24.0.0'].map(stripsTypes), [
    false,
    false,
    true,
    false,
    true,
    true,
  ]);
});

test('a bad flag value is one line on stderr and exit code 2, before anything starts', () => {
  for (const [args, message] of [
    [['--clients', '0'], /--clients must be an integer 1-50000, got "0"/],
    [['--node', '/nonexistent/node'], /--node \/nonexistent\/node cannot be run: .*ENOENT/],
    [['--node', '/bin/true'], /--node \/bin\/true is not a Node binary/],
    [['--server-env', 'NOVALUE'], /--server-env must be NAME=VALUE, got "NOVALUE"/],
    [['--only', 'nginx'], /--only must be one of status-stream, naive, floor with --scenario bare, got "nginx"/],
    [
      ['--scenario', 'full', '--only', 'naive'],
      /--only must be one of status-stream, full, floor-full with --scenario full/,
    ],
    [['--scenario', 'all'], /--scenario must be bare or full, got "all"/],
    [['--image', '--cpu-prof'], /--cpu-prof cannot profile a container/],
    [['--checks', '10'], /--checks and --check-interval shape the full scenario: add --scenario full/],
    [['--scenario', 'full', '--checks', '2'], /--checks must be an integer 3-1000, got "2"/],
    [['--scenario', 'full', '--check-interval', '50'], /--check-interval must be an integer 100-60000, got "50"/],
  ] as const) {
    const r = bench([...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('--help prints the usage at the top of bench/run.ts; --table prints a saved run again', () => {
  const help = bench(['--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^\/\/ bench\/run\.ts: `npm run bench`/);
  assert.match(help.stdout, /--node PATH/);
  const dir = mkdtempSync(join(tmpdir(), 'bench-table-'));
  try {
    const file = join(dir, 'run.json');
    const settings = { clients: 10, intervalMs: 1000, seconds: 5 };
    writeFileSync(file, JSON.stringify({ settings, machine: { serverNode: 'v0.0.1' }, results: [] }));
    const saved = bench(['--table', file]);
    assert.equal(saved.status, 0, saved.stderr);
    assert.match(saved.stdout, /^10 streams, one event per 1000 ms, 5 s steady window; .*servers on Node v0\.0\.1/);
    assert.match(saved.stdout, /^\| RSS near before again after \(s\) +\| +\|$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
