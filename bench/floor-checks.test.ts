// floor-full's checks and alerts (bench/floor-checks.ts) against real servers on 127.0.0.1,
// and how the floor frames a request's body and stamps its timers' events (bench/floor-server.ts).
// Run: node --import tsx --test bench/floor-checks.test.ts

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import {
  type FloorCheck,
  type FloorResult,
  floorConfig,
  judgeResponse,
  postAlert,
  runFloorCheck,
} from './floor-checks.ts';
import { bodyLength, everyInterval } from './floor-server.ts';
import { FULL_CHECKS, fullConfig } from './full-helper.ts';

async function listen(handler: http.RequestListener): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

function check(port: number, path: string, expect: Record<string, unknown> = {}, more = {}): FloorCheck {
  const text = JSON.stringify({ checks: [{ name: 'c', url: `http://127.0.0.1:${port}${path}`, expect, ...more }] });
  return floorConfig(text, DEFAULTS).checks[0] as FloorCheck;
}

/** The service's defaults with nothing set: STATUS_INTERVAL_MS and CHECK_TIMEOUT_MS. */
const DEFAULTS = { intervalMs: 10_000, timeoutMs: 2000 };

const run = (c: FloorCheck): Promise<FloorResult> => new Promise((resolve) => runFloorCheck(c, resolve));

test("the floor reads the full scenario's checks and receivers, and refuses what it cannot check", () => {
  const { checks, receivers } = floorConfig(fullConfig(8001, [8002, 8003]), DEFAULTS);
  assert.equal(checks.length, FULL_CHECKS);
  assert.deepEqual(
    receivers.map((url) => url.port),
    ['8002', '8003'],
  );
  const withQuery = checks.find((c) => c.request.toString('latin1').includes('?region=eu'));
  assert.ok(withQuery !== undefined);
  assert.match(
    withQuery.request.toString('latin1'),
    /^GET \/health\/\d+\?region=eu HTTP\/1\.1\r\nHost: 127\.0\.0\.1:8001\r\n/,
  );
  assert.ok(checks.some((c) => c.json !== null && c.json.path.join('.') === 'components.db.status'));
  assert.ok(checks.some((c) => c.statuses.length === 2));
  const defaults = check(1, '/');
  assert.deepEqual(defaults.statuses, [{ low: 200, high: 399 }]);
  assert.equal(defaults.intervalMs, DEFAULTS.intervalMs);
  assert.equal(defaults.timeoutMs, DEFAULTS.timeoutMs);
  assert.throws(() => floorConfig('{"checks":[{"name":"t","url":"https://127.0.0.1/"}]}', DEFAULTS), /only http/);
  assert.throws(() => check(1, '/', { status: 'two hundred' }), /expect\.status/);
});

test('the floor judges the status, the body and the latency of a response', () => {
  const c = (expect: Record<string, unknown>, more = {}): FloorCheck => check(1, '/', expect, more);
  const ok = 'HTTP/1.1 200 OK\r\nContent-Type: application/json';
  const body = '{"status":"UP","components":{"db":{"status":"UP"}}}';
  assert.deepEqual(judgeResponse(c({}), ok, '', 3), { state: 'up', latencyMs: 3, detail: 'HTTP 200' });
  assert.equal(judgeResponse(c({}), 'HTTP/1.1 503 Unavailable', '', 3).state, 'down');
  assert.equal(judgeResponse(c({ status: 204 }), 'HTTP/1.1 200 OK', '', 3).state, 'down');
  assert.equal(judgeResponse(c({ status: [200, '300-308'] }), 'HTTP/1.1 304 Not Modified', '', 3).state, 'up');
  assert.equal(judgeResponse(c({ bodyContains: '"status":"UP"' }), ok, body, 3).state, 'up');
  assert.equal(judgeResponse(c({ bodyContains: '"status":"DOWN"' }), ok, body, 3).state, 'down');
  const json = (equals: unknown): FloorCheck => c({ json: { path: 'components.db.status', equals } });
  assert.equal(judgeResponse(json('UP'), ok, body, 3).state, 'up');
  assert.equal(judgeResponse(json('DOWN'), ok, body, 3).state, 'down');
  assert.equal(judgeResponse(json('UP'), ok, 'not json', 3).state, 'down');
  assert.equal(judgeResponse(json('UP'), ok, '{"components":null}', 3).state, 'down');
  assert.equal(judgeResponse(c({}, { degradedMs: 100 }), ok, '', 150).state, 'degraded');
  assert.equal(judgeResponse(c({}, { degradedMs: 100 }), ok, '', 50).state, 'up');
});

test('a floor check runs over a real connection: up, down, timeout, refused', async () => {
  const { server, port } = await listen((req, res) => {
    if (req.url === '/health') res.writeHead(200, { 'content-type': 'application/json' }).end('{"a":{"b":[1,2]}}');
    else if (req.url === '/chunks') {
      // Two chunks, the condition's text split between them.
      res.writeHead(200, { 'content-type': 'text/plain' }).write('status: U');
      setTimeout(() => res.end('P, all good'), 20).unref();
    } else if (req.url === '/slow') setTimeout(() => res.end('late'), 2000).unref();
    else res.writeHead(503).end('unavailable');
  });
  try {
    const up = await run(check(port, '/health', { json: { path: 'a.b.1', equals: 2 } }));
    assert.equal(up.state, 'up');
    assert.equal(up.detail, 'HTTP 200');
    assert.ok(up.latencyMs > 0 && up.latencyMs < 2000, String(up.latencyMs));
    assert.equal((await run(check(port, '/health'))).state, 'up');
    assert.equal((await run(check(port, '/chunks', { bodyContains: 'status: UP, all' }))).state, 'up');
    assert.equal((await run(check(port, '/chunks', { bodyContains: 'DOWN' }))).state, 'down');
    assert.deepEqual(
      { ...(await run(check(port, '/gone'))), latencyMs: 0 },
      {
        state: 'down',
        latencyMs: 0,
        detail: 'HTTP 503',
      },
    );
    const late = await run(check(port, '/slow', {}, { timeoutMs: 100 }));
    assert.equal(late.state, 'down');
    assert.equal(late.detail, 'timeout');
  } finally {
    await close(server);
  }
  const refused = await run(check(port, '/health'));
  assert.equal(refused.state, 'down');
  assert.equal(refused.detail, 'ECONNREFUSED');
});

test('a floor alert is one POST of its JSON body', async () => {
  let resolveBody: (value: { method: string; url: string; type: string; body: string }) => void = () => {};
  const received = new Promise<{ method: string; url: string; type: string; body: string }>((resolve) => {
    resolveBody = resolve;
  });
  const { server, port } = await listen((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      res.end('ok');
      resolveBody({ method: req.method ?? '', url: req.url ?? '', type: req.headers['content-type'] ?? '', body });
    });
  });
  try {
    postAlert(new URL(`http://127.0.0.1:${port}/hook?x=1`), '{"check":"svc-49","to":"down","reason":"é"}');
    assert.deepEqual(await received, {
      method: 'POST',
      url: '/hook?x=1',
      type: 'application/json',
      body: '{"check":"svc-49","to":"down","reason":"é"}',
    });
  } finally {
    await close(server);
  }
});

test("the floor takes a request's body by its Content-Length, and refuses what it cannot frame", () => {
  assert.equal(bodyLength('POST /publish HTTP/1.1\r\nHost: a\r\n'), 0);
  assert.equal(bodyLength('POST /publish HTTP/1.1\r\nHost: a\r\ncontent-length: 42\r\n'), 42);
  assert.equal(bodyLength('POST /publish HTTP/1.1\r\nContent-Length:7 \r\nHost: a\r\n'), 7);
  assert.equal(bodyLength('POST /publish HTTP/1.1\r\nTransfer-Encoding: chunked\r\n'), -1);
  assert.equal(bodyLength('POST /publish HTTP/1.1\r\nContent-Length: 65537\r\n'), -1);
});

test("a floor timer's run counts the part of a broadcast loop that ran after it was due", async () => {
  const startMs = Date.now();
  const runs: Array<{ timeMs: number; ranMs: number }> = [];
  const asked: number[] = [];
  // A loop from 20 to 150 ms after start, say: due at 50, the first run waits 100 ms of it.
  const broadcastingAfter = (ms: number): number => {
    asked.push(ms - startMs);
    return runs.length === 0 ? Math.max(0, startMs + 150 - Math.max(ms, startMs + 20)) : 0;
  };
  const done = new Promise<void>((resolve) => {
    const timer = everyInterval(50, broadcastingAfter, (timeMs) => {
      runs.push({ timeMs, ranMs: Date.now() });
      if (runs.length === 2) {
        clearInterval(timer);
        resolve();
      }
    });
  });
  while (Date.now() - startMs < 150) {}
  await done;
  const [late, next] = runs as [{ timeMs: number; ranMs: number }, { timeMs: number; ranMs: number }];
  assert.ok(late.ranMs >= startMs + 150, `ran ${late.ranMs - startMs} ms after start`);
  assert.ok(asked[0] !== undefined && asked[0] >= 50 && asked[0] < 60, `due ${asked[0]} ms after start`);
  // Its time is its start less what the loop ran after the due moment.
  const waited = startMs + 150 - (startMs + (asked[0] ?? 0));
  assert.ok(Math.abs(late.ranMs - late.timeMs - waited) <= 2, JSON.stringify({ late, waited }));
  // Nothing broadcast after the next one was due: its time is its start.
  assert.ok(next.ranMs - next.timeMs <= 1, JSON.stringify(next));
});
