// A connection before it is a request: it gets Node's request parser only when its first
// bytes arrive, so a storm of streams opening at once takes one parser; one that sends
// nothing is closed at the header deadline, by an end before any byte, and at shutdown.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { watchParserPool } from '../bench/parser-pool.ts';
import { metricValue, request, sleep, startInProcess, startService, waitFor, withDeadline } from './helpers.ts';

/** Opens `count` connections at once, each sending `text`; resolves once all are connected. */
async function connectAll(port: number, count: number, text: string): Promise<net.Socket[]> {
  const sockets = Array.from({ length: count }, () => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('error', () => {});
    socket.resume();
    socket.once('connect', () => socket.write(text));
    return socket;
  });
  await Promise.all(sockets.map((s) => new Promise((resolve) => s.once('connect', resolve))));
  return sockets;
}

const closed = (socket: net.Socket): Promise<void> =>
  new Promise((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));

test('500 streams opened at once from another process take a parser or two, not one each', async (t) => {
  // The storm needs the clients in another process: in one process the accepts and the reads
  // take turns. The service reports its parsers through the benchmark's probe.
  const dir = mkdtempSync(join(tmpdir(), 'connections-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'watch.jsonl');
  const service = await startService(
    { STATUS_INTERVAL_MS: '60000', HEARTBEAT_MS: '0', HEAP_WATCH_FILE: file, HEAP_WATCH_MS: '100' },
    { nodeArgs: ['--import', 'tsx', '--import', './bench/heap-watch.ts'] },
  );
  let sockets: net.Socket[] = [];
  try {
    sockets = await connectAll(service.port, 500, 'GET /events HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(
      async () => metricValue((await request(`${service.url}/metrics`)).body, 'sse_clients') === 500,
      20_000,
      '500 streams',
    );
    await sleep(300);
    const parsers = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line).parsers);
    const mostOut = Math.max(...parsers.map((p) => p.outMax));
    const made = Math.max(...parsers.map((p) => p.created));
    assert.ok(mostOut <= 3, `${mostOut} parsers out at once for 500 streams`);
    assert.ok(made <= 3, `${made} parsers made for 500 streams`);
  } finally {
    for (const socket of sockets) socket.destroy();
    await service.stop();
  }
});

test('a connection that sends nothing is closed at the header deadline and holds no parser', async () => {
  const service = await startInProcess({ HEADERS_TIMEOUT_MS: '500', LOG_LEVEL: 'error' });
  const parsers = watchParserPool();
  assert.ok(parsers !== null, `Node ${process.version} has no parser pool`);
  try {
    const started = Date.now();
    const [silent] = await connectAll(service.port, 1, '');
    await sleep(100);
    assert.equal(parsers.read().outMax, 0, 'no parser for a connection that has sent nothing');
    await withDeadline(closed(silent), 5000, 'the silent connection to close');
    const tookMs = Date.now() - started;
    assert.ok(tookMs >= 450 && tookMs < 1500, `closed after ${tookMs} ms`);
    // A head begun and never finished is held to the same deadline, counted from the accept.
    const partialStarted = Date.now();
    const [partial] = await connectAll(service.port, 1, 'GET /status HTTP/1.1\r\nX-Slow: ');
    await withDeadline(closed(partial), 5000, 'the half-sent head to close');
    const partialMs = Date.now() - partialStarted;
    assert.ok(partialMs >= 450 && partialMs < 1500, `closed after ${partialMs} ms`);
  } finally {
    parsers.stop();
    await service.close();
  }
});

test('an end before any byte closes the connection, and the service still answers', async () => {
  const service = await startInProcess({ LOG_LEVEL: 'error' });
  try {
    const socket = net.connect({ port: service.port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => {});
    socket.resume();
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.end();
    await withDeadline(closed(socket), 5000, 'the server to close it');
    const [healthz] = await connectAll(
      service.port,
      1,
      'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    let answer = '';
    healthz.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
    });
    await withDeadline(closed(healthz), 5000, 'the answer');
    assert.match(answer, /^HTTP\/1\.1 200 /);
  } finally {
    await service.close();
  }
});

test('at shutdown a connection that sent nothing is closed at once; one that sent a request is read', async () => {
  const service = await startInProcess({ SHUTDOWN_GRACE_MS: '10000', LOG_LEVEL: 'error' });
  const [silent] = await connectAll(service.port, 1, '');
  const [asking] = await connectAll(service.port, 1, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  let answer = '';
  asking.on('data', (chunk: Buffer) => {
    answer += chunk.toString('latin1');
  });
  const started = Date.now();
  await service.close();
  const tookMs = Date.now() - started;
  assert.ok(tookMs < 2000, `shutdown took ${tookMs} ms`);
  await withDeadline(closed(silent), 2000, 'the silent connection to close');
  await withDeadline(closed(asking), 2000, 'the asking connection to close');
  // Sent before the shutdown began, its request was read: answered, or refused while draining.
  assert.match(answer, /^HTTP\/1\.1 (200|503) /);
});
