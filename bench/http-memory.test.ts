// bench/http-memory.ts at a small scale: it starts its bare server, holds the connections
// and reports every figure per connection, in each mode; bad flags are one line and exit 2.
// It checks what is measured, never how much: the figures belong to bench/README.md.
// Run: node --import tsx --test bench/http-memory.test.ts

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { ROOT } from '../tests/helpers.ts';

function httpMemory(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/http-memory.ts', '--settle', '100', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const FIGURES = ['vmRss', 'brkHeap', 'anon', 'heapUsed', 'heapTotal', 'newSpace', 'external', 'arrayBuffers'];

for (const mode of ['sse', 'idle', 'net']) {
  test(`--mode ${mode}: the server holds every connection and each figure is reported per connection`, () => {
    const r = httpMemory(['--connections', '40', '--mode', mode, '--json', '--deadline', '50']);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout) as Record<string, unknown> & Record<'held' | 'afterGc', Record<string, number>>;
    assert.equal(report.node, process.version);
    assert.equal(report.mode, mode);
    assert.equal(report.connections, 40);
    assert.equal(report.lever, 'defaults');
    for (const reading of [report.held, report.afterGc]) {
      assert.deepEqual(Object.keys(reading), FIGURES);
      for (const figure of FIGURES) assert.ok(Number.isFinite(reading[figure]), `${figure}: ${reading[figure]}`);
    }
  });
}

test('the levers are passed to the server and named in the report', () => {
  const r = httpMemory([
    ...['--connections', '20', '--node-arg=--max-semi-space-size=2', '--env', 'MALLOC_ARENA_MAX=2'],
    ...['--option', 'maxHeaderSize=4096', '--no-delay', '--headers-timeout', '0', '--checking-interval', '5000'],
    '--release-parser',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const [title, header, held, afterGc] = r.stdout.trim().split('\n');
  assert.match(
    title ?? '',
    /^Node v[\d.]+, 20 connections, mode sse, --max-semi-space-size=2, MALLOC_ARENA_MAX=2, maxHeaderSize: 4096, /,
  );
  assert.match(title ?? '', /connectionsCheckingInterval: 5000, noDelay=true, releaseParser=true, headersTimeout=0$/);
  assert.match(header ?? '', /^KiB\/conn +VmRSS \[heap\] +anon/);
  assert.match(held ?? '', /^held( +-?\d+\.\d\d){8}$/);
  assert.match(afterGc ?? '', /^after gc( +-?\d+\.\d\d){8}$/);
});

test('a bad flag is one line on stderr and exit code 2', () => {
  for (const [args, message] of [
    [['--mode', 'tls'], /--mode must be sse, idle or net, got tls/],
    [['--connections', '40000'], /--connections must be an integer 1-30000, got 40000/],
    [['--env', 'NOVALUE'], /--env must be NAME=VALUE, got "NOVALUE"/],
  ] as const) {
    const r = httpMemory([...args]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
  }
});
