// A stream's life in the hub: registered only when its response owns the socket, freed at
// once when dropped as slow, kept alive by heartbeats, and after `done` cut off within a
// second when the client keeps its socket.

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { test } from 'node:test';
import { type SseEvent as ParsedEvent, ResponseParser, SseParser } from '../bench/sse-parser.ts';
import { canReleaseParser } from '../http/connections.ts';
import { DONE_LINGER_MS, SseHub, type SseStream } from '../sse.ts';
import { openStream, request, sleep, startHubServer, startInProcess, waitFor, withDeadline } from './helpers.ts';

/** A raw connection: sends `text` at once, parses the one response it gets. */
async function rawStream(port: number, text: string, options: net.NetConnectOpts = { port }) {
  const socket = net.connect({ ...options, port, host: '127.0.0.1' });
  socket.on('error', () => {});
  await withDeadline(new Promise((resolve) => socket.once('connect', resolve)), 5000, 'connect');
  const events: ParsedEvent[] = [];
  let bytes = '';
  const sse = new SseParser((e) => events.push(e));
  const response = new ResponseParser(
    () => {},
    (body) => sse.feed(body),
    () => {},
  );
  socket.on('data', (chunk: Buffer) => {
    bytes += chunk.toString('latin1');
    response.feed(chunk);
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(text);
  return { socket, events, response, closed, text: () => bytes };
}

const GET = 'GET /events HTTP/1.1\r\nHost: x\r\n\r\n';

test('a stream dropped as slow frees its slot at once, and onClose runs once', async () => {
  const closed: SseStream[] = [];
  const hubServer = await startHubServer({
    maxClients: 1,
    maxBufferedBytes: 64 * 1024,
    replaySize: 1,
    onClose: (s) => closed.push(s),
  });
  const { hub } = hubServer;
  const serverSideClosed = new Promise<void>((resolve) => {
    hubServer.server.once('connection', (socket: net.Socket) => socket.once('close', () => resolve()));
  });
  const stalled = await rawStream(hubServer.port, GET);
  try {
    await waitFor(() => stalled.response.head !== null, 5000, 'the response head');
    stalled.socket.pause();
    const refused = await request(hubServer.url);
    assert.equal(refused.status, 503, 'the one slot is taken');
    assert.equal(hub.stats.dropped.full, 1);
    const megabyte = 'm'.repeat(1 << 20);
    // Synchronously, so that the socket's 'close' cannot come in between.
    for (let i = 0; i < 200 && hub.stats.dropped.slow === 0; i++) hub.publishSnapshot(megabyte);
    assert.equal(hub.stats.dropped.slow, 1);
    assert.equal(hub.size, 0);
    assert.equal(hub.full, false);
    assert.deepEqual(
      closed.map((s) => s.closeReason),
      ['slow'],
    );
    const next = await openStream(hubServer.url);
    assert.equal(next.status, 200);
    await withDeadline(serverSideClosed, 5000, "the dropped stream's connection to close");
    await sleep(50);
    assert.equal(closed.length, 1, 'onClose ran once, not again at the socket close');
    next.close();
  } finally {
    stalled.socket.destroy();
    await hubServer.close();
  }
});

test('requests pipelined behind a stream are not registered, add no listener and get nothing', async () => {
  const hubServer = await startHubServer();
  const { hub } = hubServer;
  const warnings: Error[] = [];
  const onWarning = (warning: Error): void => {
    warnings.push(warning);
  };
  process.on('warning', onWarning);
  let serverSide: net.Socket | undefined;
  hubServer.server.once('connection', (socket: net.Socket) => {
    serverSide = socket;
  });
  // More than EventEmitter's default of 10 listeners, had each added one.
  const conn = await rawStream(hubServer.port, GET.repeat(12));
  try {
    await waitFor(() => hub.stats.queued === 11, 5000, 'eleven queued requests');
    assert.equal(hub.size, 1);
    assert.equal(hub.stats.connectionsTotal, 1);
    assert.ok(serverSide !== undefined);
    assert.ok(serverSide.listenerCount('close') < 5, `close listeners: ${serverSide.listenerCount('close')}`);
    const id = hub.publishSnapshot('{"n":1}');
    await waitFor(() => conn.events.length === 1, 5000, 'the broadcast');
    await sleep(50);
    assert.deepEqual(
      conn.events.map((e) => e.lastEventId),
      [id],
    );
    assert.equal(conn.text().match(/HTTP\/1\.1 /g)?.length, 1, 'one response on the wire');
    assert.deepEqual(
      warnings.map((w) => w.name),
      [],
    );
    conn.socket.destroy();
    await waitFor(() => hub.size === 0, 5000, 'the stream to go with its connection');
  } finally {
    process.off('warning', onWarning);
    conn.socket.destroy();
    await hubServer.close();
  }
});

test('the service opens only the first of pipelined GET /events on one connection', async () => {
  const service = await startInProcess({ STATUS_INTERVAL_MS: '60000', HEARTBEAT_MS: '0', LOG_LEVEL: 'error' });
  const conn = await rawStream(service.port, GET.repeat(12));
  try {
    await waitFor(() => service.hub.stats.queued === 11, 5000, 'eleven queued requests');
    await waitFor(() => conn.events.length >= 1, 10_000, 'the first snapshot');
    assert.equal(service.hub.size, 1);
    conn.socket.destroy();
    await waitFor(() => service.hub.size === 0, 5000, 'the stream to go with its connection');
  } finally {
    conn.socket.destroy();
    await service.close();
  }
});

test('a request whose connection is already gone opens nothing', async () => {
  const hub = new SseHub({ retryMs: 1000, heartbeatMs: 0, replaySize: 10, maxClients: 10, maxBufferedBytes: 1 << 20 });
  const results: string[] = [];
  const server = http.createServer((req, res) => {
    req.socket.destroy();
    const opened = hub.open(res, { lastEventId: null, events: null });
    results.push(typeof opened === 'string' ? opened : 'stream');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    await assert.rejects(request(`http://127.0.0.1:${port}/`), /socket hang up|ECONNRESET/);
    assert.deepEqual(results, ['queued']);
    assert.equal(hub.size, 0);
    assert.equal(hub.stats.connectionsTotal, 0);
  } finally {
    server.close();
  }
});

test('a silent stream gets a heartbeat comment, a busy one does not', async () => {
  const hubServer = await startHubServer({ heartbeatMs: 150 });
  try {
    const quiet = await openStream(hubServer.url);
    await quiet.waitFor((b) => b.comment === 'heartbeat', 2, 5000, 'heartbeats');
    assert.ok(quiet.raw.includes('\n: heartbeat\n\n'));
    quiet.close();
    const busy = await openStream(hubServer.url);
    for (let i = 0; i < 6; i++) {
      hubServer.hub.publishSnapshot(`{"n":${i}}`);
      await sleep(50);
    }
    assert.equal(busy.blocks.filter((b) => b.comment !== undefined).length, 0);
    busy.close();
  } finally {
    await hubServer.close();
  }
});

test('after done, sockets the clients keep open are destroyed within about a second, not at the grace', async () => {
  assert.equal(DONE_LINGER_MS, 1000);
  const service = await startInProcess({ STATUS_INTERVAL_MS: '60000', HEARTBEAT_MS: '0', SHUTDOWN_GRACE_MS: '10000' });
  // One reads but never closes its side; the other stopped reading after the first event.
  const keeper = await rawStream(service.port, GET, { port: service.port, allowHalfOpen: true });
  const stalled = await rawStream(service.port, GET);
  try {
    await waitFor(() => keeper.events.length >= 1 && stalled.events.length >= 1, 10_000, 'first snapshots');
    stalled.socket.pause();
    const started = Date.now();
    await withDeadline(service.shutdown(), 9000, 'shutdown');
    const tookMs = Date.now() - started;
    assert.ok(tookMs < 3000, `shutdown took ${tookMs} ms with a 10 s grace`);
    assert.ok(!service.logs.some((l) => String(l.msg).includes('grace')), 'the grace did not run out');
    assert.deepEqual(keeper.events.map((e) => e.type).slice(-1), ['done']);
  } finally {
    keeper.socket.destroy();
    stalled.socket.destroy();
    await service.close();
  }
});

test('a stream whose response was destroyed is unregistered by the next write, before its close event', async () => {
  const opened: SseStream[] = [];
  const closed: SseStream[] = [];
  const hubServer = await startHubServer({ onOpen: (s) => opened.push(s), onClose: (s) => closed.push(s) });
  try {
    const client = await openStream(hubServer.url);
    await waitFor(() => opened.length === 1, 5000, 'the stream to open');
    opened[0].res.destroy();
    hubServer.hub.publishSnapshot('{}');
    assert.equal(hubServer.hub.size, 0);
    assert.deepEqual(
      closed.map((s) => s.closeReason),
      ['client'],
    );
    await withDeadline(client.closed, 5000, 'the client to see the connection end');
    assert.equal(closed.length, 1);
  } finally {
    await hubServer.close();
  }
});

test("a stream's connection gives its parser back; a byte from its client then closes it", async () => {
  assert.ok(canReleaseParser, `Node ${process.version} has no parser to release`);
  const service = await startInProcess({ STATUS_INTERVAL_MS: '60000', HEARTBEAT_MS: '0', LOG_LEVEL: 'error' });
  const serverSide: net.Socket[] = [];
  service.server.on('connection', (socket: net.Socket) => serverSide.push(socket));
  const conn = await rawStream(service.port, GET);
  // Another connection, opened after the release, gets the released parser from Node's pool.
  const other = await rawStream(service.port, '');
  try {
    await waitFor(() => conn.events.length === 1, 10_000, 'the first snapshot');
    const parserOf = (socket: net.Socket): unknown => (socket as net.Socket & { parser?: unknown }).parser;
    await waitFor(() => parserOf(serverSide[0]) === null, 5000, "the stream's parser to be released");
    const healthz = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
    other.socket.write(healthz);
    await waitFor(() => /ok/.test(other.text()), 5000, 'the first answer on the other connection');
    // The stream's client speaks: its bytes close its own connection and reach no parser.
    conn.socket.write(healthz);
    await withDeadline(conn.closed, 5000, "the stream's connection to close");
    await waitFor(() => service.hub.size === 0, 5000, 'the stream to be unregistered');
    other.socket.write(healthz);
    await waitFor(() => other.text().match(/HTTP\/1\.1 200/g)?.length === 2, 5000, 'the second answer');
    await sleep(100);
    assert.equal(other.text().match(/HTTP\/1\.1 /g)?.length, 2, 'the other connection got its own two answers only');
    assert.equal(conn.text().match(/HTTP\/1\.1 /g)?.length, 1, 'the stream got no answer to its bytes');
  } finally {
    conn.socket.destroy();
    other.socket.destroy();
    await service.close();
  }
});

test("a stream's client that half-closes its connection gets it closed, as before the parser went", async () => {
  const service = await startInProcess({ STATUS_INTERVAL_MS: '60000', HEARTBEAT_MS: '0', LOG_LEVEL: 'error' });
  let serverSide: net.Socket | undefined;
  service.server.once('connection', (socket: net.Socket) => {
    serverSide = socket;
  });
  const conn = await rawStream(service.port, GET, { port: service.port, allowHalfOpen: true });
  try {
    await waitFor(() => conn.events.length === 1, 10_000, 'the first snapshot');
    await waitFor(() => (serverSide as { parser?: unknown } | undefined)?.parser === null, 5000, 'the release');
    conn.socket.end();
    await withDeadline(conn.closed, 5000, 'the server to end the connection');
    await waitFor(() => service.hub.size === 0, 5000, 'the stream to be unregistered');
  } finally {
    conn.socket.destroy();
    await service.close();
  }
});
