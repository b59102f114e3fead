// The bench's process control (bench/processes.ts): children started, waited for, and
// stopped by PID; a server that dies or never answers is reported with its output.
// Run: node --import tsx --test bench/processes.test.ts

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { withDeadline } from '../tests/helpers.ts';
import {
  childEnv,
  exited,
  freePort,
  get,
  isRunning,
  killAll,
  signal,
  spawnTracked,
  startServer,
  stop,
  tail,
} from './processes.ts';

const node = process.execPath;
const script = (code: string): string[] => ['-e', code];

test('a child is stopped by SIGTERM, and killAll() kills every child still running by its PID', async () => {
  const polite = spawnTracked(node, script('setInterval(() => {}, 1000)'), { stdio: 'ignore' });
  const stubborn = spawnTracked(node, script("process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)"), {
    stdio: 'ignore',
  });
  await withDeadline(stop(polite), 5000, 'stop');
  assert.equal(polite.signalCode, 'SIGTERM');
  assert.equal(isRunning(stubborn), true);
  killAll();
  assert.equal(await exited(stubborn, 5000), true);
  assert.equal(stubborn.signalCode, 'SIGKILL');
  signal(stubborn, 'SIGKILL'); // an exited child is not signalled again
});

test('exited() says false when the child outlives the timeout', async () => {
  const child = spawnTracked(node, script('setTimeout(() => {}, 5000)'), { stdio: 'ignore' });
  try {
    assert.equal(await exited(child, 100), false);
  } finally {
    signal(child, 'SIGKILL');
    await exited(child, 5000);
  }
});

test('tail() keeps the last characters a child wrote', async () => {
  const child = spawnTracked(node, script("process.stdout.write('x'.repeat(100) + 'end')"), {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const out = tail(child.stdout, 5);
  // 'close': the child exited and its stdio streams are closed.
  await withDeadline(new Promise((resolve) => child.once('close', resolve)), 5000, 'child close');
  assert.equal(out(), 'xxend');
});

test('a child gets the inherited environment without the removed names, with the set ones on top', () => {
  process.env.BENCH_TEST_REMOVED = '1';
  try {
    const env = childEnv(['BENCH_TEST_REMOVED'], { PORT: '1' });
    assert.equal(env.BENCH_TEST_REMOVED, undefined);
    assert.equal(env.PORT, '1');
    assert.equal(env.PATH, process.env.PATH);
  } finally {
    delete process.env.BENCH_TEST_REMOVED;
  }
});

const launch = { name: 'test-server', node, cwd: process.cwd(), env: { ...process.env } as Record<string, string> };

test('startServer() returns once /healthz answers 200 on 127.0.0.1', async () => {
  const port = await freePort();
  const code =
    "require('node:http').createServer((q, s) => s.end(q.url)).listen(Number(process.env.PORT), '127.0.0.1')";
  const server = await withDeadline(
    startServer({ ...launch, args: script(code), env: { ...launch.env, PORT: `${port}` }, port, startTimeoutMs: 9000 }),
    12_000,
    'start',
  );
  try {
    assert.equal(server.pid, server.child.pid);
    assert.deepEqual(await get(port, '/metrics'), { status: 200, body: '/metrics' });
  } finally {
    await stop(server.child);
  }
});

test('startServer() reports a server that exits, with what it wrote, and one that never answers', async () => {
  const port = await freePort();
  await assert.rejects(
    startServer({ ...launch, args: script("console.error('no config'); process.exit(2)"), port, startTimeoutMs: 9000 }),
    /test-server exited \(code 2, signal null\)\nno config/,
  );
  await assert.rejects(
    startServer({ ...launch, args: script('setInterval(() => {}, 1000)'), port, startTimeoutMs: 300 }),
    /did not answer \/healthz within 300 ms/,
  );
});

test('get() gives up at its deadline', async () => {
  const silent = createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const address = silent.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  try {
    await assert.rejects(get(port, '/slow', 100), /GET \/slow timed out/);
  } finally {
    silent.closeAllConnections();
    silent.close();
  }
});
