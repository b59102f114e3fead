// Robustness (docs/operations.md): slow readers are dropped and counted, MAX_CLIENTS is enforced,
// bad input gets a clear answer and changes nothing, a handler error is a 500 that
// leaves the process up, and a taken port is one clear line and exit 1.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import {
  type InProcess,
  metricValue,
  openStream,
  request,
  runToExit,
  sleep,
  startInProcess,
  waitFor,
  withDeadline,
} from './helpers.ts';

/** Sends raw bytes, returns what came back until the server closed or `ms` passed. */
async function raw(port: number, bytes: string | Buffer, ms = 2000): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let text = '';
  socket.setEncoding('latin1').on('data', (t: string) => (text += t));
  socket.write(bytes);
  await Promise.race([new Promise((resolve) => socket.once('close', resolve)), sleep(ms)]);
  socket.destroy();
  return text;
}

test('drops a client that stops reading while a normal client keeps receiving', async () => {
  const service = await startInProcess({
    STATUS_INTERVAL_MS: '100',
    HEARTBEAT_MS: '0',
    MAX_BUFFERED_BYTES: String(64 * 1024),
    // ~300 KB snapshots fill the stalled reader's kernel buffers within seconds.
    CHECKS: Array.from({ length: 1000 }, (_, i) => `c${i}-${'n'.repeat(200)}=tcp://127.0.0.1:1`).join(','),
    LOG_LEVEL: 'warn',
  });
  try {
    const stalled = net.connect(service.port, '127.0.0.1');
    stalled.on('error', () => {});
    await new Promise((resolve) => stalled.once('connect', resolve));
    stalled.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n');
    stalled.pause(); // never reads again
    const reader = await openStream(`${service.url}/events`);
    await waitFor(() => service.hub.stats.dropped.slow === 1, 60_000, 'the stalled client to be dropped');
    await waitFor(() => service.hub.size === 1, 5000, 'the dropped stream to be unregistered');
    // The normal reader is still served after the drop.
    const seen = reader.events.length;
    await reader.waitForEvents(seen + 2, 10_000);
    const metrics = await request(`${service.url}/metrics`);
    assert.equal(metricValue(metrics.body, 'sse_clients_dropped_total{reason="slow"}'), 1);
    assert.equal(metricValue(metrics.body, 'sse_clients'), 1);
    assert.ok(service.logs.some((l) => l.msg === 'stream dropped: slow reader' && l.level === 40));
    reader.close();
    stalled.destroy();
  } finally {
    await service.close();
  }
});

test('refuses the stream past MAX_CLIENTS with 503 and Retry-After, and accepts again when a slot frees', async () => {
  const service = await startInProcess({ MAX_CLIENTS: '2', RETRY_MS: '1500' });
  try {
    const a = await openStream(`${service.url}/events`);
    const b = await openStream(`${service.url}/events`);
    assert.equal((await request(`${service.url}/readyz`)).status, 503);
    const refused = await request(`${service.url}/events`);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '2');
    assert.deepEqual(JSON.parse(refused.body), { error: 'too many streams' });
    assert.equal(service.hub.stats.dropped.full, 1);
    a.close();
    await waitFor(() => service.hub.size === 1, 5000, 'a slot to free');
    const ready = await request(`${service.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(JSON.parse(ready.body), { ready: true });
    const c = await openStream(`${service.url}/events`);
    assert.equal(c.status, 200);
    b.close();
    c.close();
  } finally {
    await service.close();
  }
});

let service: InProcess;
before(async () => {
  service = await startInProcess({ STATUS_INTERVAL_MS: '200', LOG_LEVEL: 'warn' });
});
after(() => service.close());

test('answers a garbage request line with 400 and oversized headers with 431, from Node', async () => {
  assert.match(await raw(service.port, 'HELLO THERE\r\n\r\n'), /^HTTP\/1\.1 400 /);
  assert.match(
    await raw(service.port, `GET /status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`),
    /^HTTP\/1\.1 431 /,
  );
});

test('answers unknown paths with a JSON 404 that does not echo the input', async () => {
  for (const path of [
    '/nope',
    '/events/',
    '//events',
    '/EVENTS',
    '/%3Cscript%3E',
    '/constructor',
    '/__proto__',
    '/toString',
  ]) {
    const reply = await request(`${service.url}${path}`);
    assert.equal(reply.status, 404, path);
    assert.deepEqual(JSON.parse(reply.body), { error: 'not found' });
    assert.equal(reply.headers['content-type'], 'application/json; charset=utf-8');
  }
});

test('answers a wrong method on a known path with 405 and Allow', async () => {
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    const reply = await request(`${service.url}/events`, { method });
    assert.equal(reply.status, 405);
    assert.equal(reply.headers.allow, 'GET, HEAD, OPTIONS');
    assert.deepEqual(JSON.parse(reply.body), { error: 'method not allowed' });
  }
});

test('HEAD works wherever GET does, without a body', async () => {
  for (const path of ['/', '/status', '/healthz', '/readyz', '/metrics']) {
    const [head, get] = [
      await request(`${service.url}${path}`, { method: 'HEAD' }),
      await request(`${service.url}${path}`),
    ];
    assert.equal(head.status, get.status, path);
    assert.equal(head.headers['content-type'], get.headers['content-type'], path);
    assert.equal(head.body, '', path);
  }
});

test('ignores junk query strings', async () => {
  for (const query of ['?%%%', '?a=%ZZ&&==&', `?${'x'.repeat(4000)}`, '?lastEventId=%00%0A%0D', '?token']) {
    assert.equal((await request(`${service.url}/status${query}`)).status, 200, query);
    const stream = await openStream(`${service.url}/events${query}`);
    assert.equal(stream.status, 200, query);
    await stream.waitForEvents(1);
    stream.close();
  }
});

test('answers 500 without details when a handler fails, and stays up', async () => {
  const local = await startInProcess({ STATUS_INTERVAL_MS: '60000' });
  try {
    // Fault injection: the snapshot rejects (async path), opening a stream throws (sync path).
    local.poller.snapshot = () => Promise.reject(new Error('secret detail'));
    const failed = await request(`${local.url}/status`);
    assert.equal(failed.status, 500);
    assert.deepEqual(JSON.parse(failed.body), { error: 'internal error' });
    local.hub.open = () => {
      throw new Error('secret detail');
    };
    const failedStream = await request(`${local.url}/events`);
    assert.equal(failedStream.status, 500);
    assert.doesNotMatch(failedStream.body, /secret|at /);
    const logged = local.logs.filter((l) => l.msg === 'request failed');
    assert.equal(logged.length, 2);
    assert.deepEqual(
      logged.map((l) => l.path),
      ['/status', '/events'],
    );
    assert.equal((await request(`${local.url}/healthz`)).status, 200);
  } finally {
    await local.close();
  }
});

test('survives a few thousand random and truncated requests: a stream opened before still receives', async () => {
  const stream = await openStream(`${service.url}/events`);
  await stream.waitForEvents(1);
  const valid = [
    'GET /events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: abc\r\n\r\n',
    'GET /status?token=x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer y\r\n\r\n',
    'OPTIONS /events HTTP/1.1\r\nHost: x\r\nOrigin: http://evil\r\n\r\n',
    'POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello',
    'GET / HTTP/1.0\r\n\r\n',
  ];
  const TOTAL = 3000;
  const CONCURRENCY = 50;
  const deadline = Date.now() + 60_000;
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (sent < TOTAL && Date.now() < deadline) {
      const n = sent++;
      const base = valid[n % valid.length];
      const kind = n % 3;
      const bytes =
        kind === 0
          ? randomBytes(1 + (n % 300))
          : kind === 1
            ? Buffer.from(base.slice(0, n % base.length)) // truncated
            : Buffer.concat([Buffer.from(base.slice(0, n % base.length)), randomBytes(n % 50)]); // corrupted
      await raw(service.port, bytes, 50);
    }
  };
  await withDeadline(Promise.all(Array.from({ length: CONCURRENCY }, worker)), 90_000, 'fuzzing');
  assert.ok(sent >= TOTAL, `sent ${sent}`);
  const before = stream.events.length;
  await stream.waitForEvents(before + 2, 10_000);
  assert.equal((await request(`${service.url}/healthz`)).status, 200);
  stream.close();
});

test('a taken port stops start-up with one clear line and exit code 1', async () => {
  const { code, stderr, stdout } = await runToExit({ PORT: String(service.port), HOST: '127.0.0.1' });
  assert.equal(code, 1);
  assert.equal(stderr, `status-stream: 127.0.0.1:${service.port} is already in use\n`);
  assert.equal(stdout, '');
});
