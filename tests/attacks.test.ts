// Attacks the service survives: descriptors run out, silent sockets, streams pipelined on
// one connection. Each started as an attacker would, bounded in count and time.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { metricValue, openStream, request, type Service, sleep, startService, waitFor } from './helpers.ts';

const started: Service[] = [];
after(async () => {
  await Promise.all(started.map((s) => s.stop('SIGKILL')));
});

/** Opens up to `count` TCP connections that send nothing; resolves with those still open. */
async function silentSockets(port: number, count: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  for (let i = 0; i < count; i++) {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    sockets.push(socket);
    if (i % 50 === 49) await sleep(10);
  }
  await sleep(300);
  return sockets;
}

test('running out of descriptors never ends the process, and the streams open go on', async () => {
  // MAX_CONNECTIONS above the descriptor limit: accept() itself fails with EMFILE.
  const service = await startService(
    { STATUS_INTERVAL_MS: '100', HEADERS_TIMEOUT_MS: '1000', MAX_CONNECTIONS: '5000' },
    { nofile: 128 },
  );
  started.push(service);
  const stream = await openStream(`${service.url}/events`);
  const sockets = await silentSockets(service.port, 400);
  try {
    const before = stream.events.length;
    await sleep(1500);
    assert.equal(service.child.exitCode, null, `exited: ${service.stderr.join('')}`);
    assert.ok(stream.events.length > before + 3, 'snapshots kept coming while descriptors were exhausted');
    // Reading the process's memory needs a descriptor: while none is left it is null.
    const rss = stream.events.slice(before).map((e) => JSON.parse(e.data!).service.rssBytes);
    assert.ok(rss.includes(null), `rssBytes while exhausted: ${rss.join(', ')}`);
  } finally {
    for (const s of sockets) s.destroy();
    stream.close();
  }
  // Once the flood is gone the service answers again.
  await waitFor(
    async () => (await request(`${service.url}/healthz`).catch(() => ({ status: 0 }))).status === 200,
    10_000,
    '/healthz',
  );
  assert.ok(!service.logs.some((l) => /unhandled|uncaught/i.test(l)));
  assert.equal(await service.stop(), 0);
});

test('silent connections past MAX_CONNECTIONS are refused and counted, and clear within the header deadline', async () => {
  const service = await startService({ HEADERS_TIMEOUT_MS: '1000' }, { nofile: 256 });
  started.push(service);
  const stream = await openStream(`${service.url}/events`);
  const sockets = await silentSockets(service.port, 300); // the cap is 256 - 64 = 192
  try {
    // The silent ones are closed by the 1 s header deadline (checked every second).
    await waitFor(
      async () => {
        const reply = await request(`${service.url}/metrics`).catch(() => null);
        return reply !== null && metricValue(reply.body, 'http_connections_rejected_total') > 0;
      },
      8000,
      'a rejected connection counted, then /metrics answered',
    );
    const closed = sockets.filter((s) => s.destroyed || s.readableEnded).length;
    assert.ok(closed > 100, `${closed} of 300 silent sockets closed`);
    assert.equal(service.child.exitCode, null);
    assert.ok(stream.events.length >= 1, 'the stream open before the flood still has its events');
  } finally {
    for (const s of sockets) s.destroy();
    stream.close();
  }
});

test('streams pipelined on one connection take one slot at most, and a long pipeline is cut', async () => {
  const service = await startService({ MAX_CLIENTS: '100', STATUS_INTERVAL_MS: '200' });
  started.push(service);
  const sockets: net.Socket[] = [];
  for (let i = 0; i < 6; i++) {
    const socket = net.connect({ host: '127.0.0.1', port: service.port });
    socket.on('error', () => {});
    socket.resume();
    socket.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(2000));
    sockets.push(socket);
  }
  try {
    await waitFor(
      () => sockets.every((s) => s.destroyed || s.readableEnded),
      15_000,
      'every pipelining connection closed',
    );
    await waitFor(
      async () => metricValue((await request(`${service.url}/metrics`)).body, 'sse_clients') === 0,
      5000,
      'no stream left',
    );
    assert.equal((await request(`${service.url}/readyz`)).status, 200);
    const stream = await openStream(`${service.url}/events`);
    assert.equal(stream.status, 200);
    stream.close();
  } finally {
    for (const s of sockets) s.destroy();
  }
});

test('two streams pipelined on one connection: only the first is a stream', async () => {
  const service = await startService({ STATUS_INTERVAL_MS: '200' });
  started.push(service);
  const socket = net.connect({ host: '127.0.0.1', port: service.port });
  let received = '';
  socket.setEncoding('utf8').on('data', (t: string) => (received += t));
  socket.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\nGET /events HTTP/1.1\r\nHost: x\r\n\r\n');
  try {
    await waitFor(() => (received.match(/^data: /gm) ?? []).length >= 2, 5000, 'two snapshots on the first stream');
    assert.equal((received.match(/HTTP\/1\.1 200/g) ?? []).length, 1, 'one response head');
    assert.equal(metricValue((await request(`${service.url}/metrics`)).body, 'sse_clients'), 1);
    assert.ok(!service.stderr.join('').includes('MaxListenersExceededWarning'));
  } finally {
    socket.destroy();
  }
});

test('a stream pipelined behind an ordinary answer opens once that answer is done', async () => {
  const service = await startService({ STATUS_INTERVAL_MS: '200' });
  started.push(service);
  const socket = net.connect({ host: '127.0.0.1', port: service.port });
  let received = '';
  socket.setEncoding('utf8').on('data', (t: string) => (received += t));
  socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /events HTTP/1.1\r\nHost: x\r\n\r\n');
  try {
    await waitFor(() => /^data: /m.test(received), 5000, 'a snapshot on the pipelined stream');
    assert.match(received, /^HTTP\/1\.1 200 OK[\s\S]*"ok":true[\s\S]*HTTP\/1\.1 200 OK[\s\S]*text\/event-stream/);
  } finally {
    socket.destroy();
  }
});

test('a secret in a check URL (credentials or query values) appears nowhere: logs, /status, /events, /metrics', async () => {
  const service = await startService({
    CHECKS: 'cred=http://admin:Pa55word@127.0.0.1:1/x?apikey=QueryKeyLeak&env=prod',
    STATUS_INTERVAL_MS: '200',
    LOG_LEVEL: 'debug',
  });
  started.push(service);
  const stream = await openStream(`${service.url}/events`);
  try {
    await stream.waitForEvents(2, 5000);
    const status = (await request(`${service.url}/status`)).body;
    const metrics = (await request(`${service.url}/metrics`)).body;
    await waitFor(() => service.logs.some((l) => l.includes('"check down"')), 5000, 'the transition logged');
    for (const [where, text] of [
      ['logs', service.logs.join('\n')],
      ['/status', status],
      ['/events', stream.raw],
      ['/metrics', metrics],
    ]) {
      assert.doesNotMatch(text, /QueryKeyLeak|Pa55word|admin|prod/, where);
    }
    assert.equal(JSON.parse(status).checks[0].target, 'http://127.0.0.1:1/x?apikey=…&env=…');
  } finally {
    stream.close();
  }
});
