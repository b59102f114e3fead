// The checks of SPEC §5 against real local targets: up, refused, HTTP 500, a redirect
// (not followed), a target that never answers (timeout) while heartbeats, other streams
// and /healthz carry on; and the overall status.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import type { CheckSpec } from '../config.ts';
import { parseConfig } from '../config.ts';
import { overallStatus, runCheck, type CheckResult } from '../status.ts';
import { freePort, openStream, request, startInProcess, withDeadline } from './helpers.ts';

let base = '';
let redirectTargetHits = 0;
const held: http.ServerResponse[] = [];
const web = http.createServer((req, res) => {
  if (req.url === '/ok') res.end('fine');
  else if (req.url === '/fail') res.writeHead(500).end('broken');
  else if (req.url === '/redirect') res.writeHead(302, { Location: '/redirected' }).end();
  else if (req.url === '/redirected') { redirectTargetHits++; res.writeHead(500).end(); }
  else if (req.url === '/hang') held.push(res); // never answers
  else if (req.url === '/endless') { res.writeHead(200); res.write('x'.repeat(65536)); held.push(res); }
  else res.writeHead(404).end();
});
const tcp = net.createServer((socket) => socket.end());
let tcpPort = 0;
let refusedPort = 0;

before(async () => {
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
  tcpPort = (tcp.address() as AddressInfo).port;
  refusedPort = await freePort();
});
after(() => {
  for (const res of held) res.destroy();
  web.closeAllConnections();
  web.close();
  tcp.close();
});

const check = (value: string): CheckSpec => parseConfig({ CHECKS: value }).checks[0];

test('an HTTP check is ok for 200 and reports the code', async () => {
  const result = await runCheck(check(`app=${base}/ok`), 2000);
  assert.deepEqual({ ...result, latencyMs: 0 }, { name: 'app', kind: 'http', target: `${base}/ok`, ok: true, latencyMs: 0, detail: 'HTTP 200' });
  assert.ok(result.latencyMs > 0 && result.latencyMs < 2000);
});

test('an HTTP check fails on 500 and on a refused connection', async () => {
  assert.deepEqual(pick(await runCheck(check(`${base}/fail`), 2000)), [false, 'HTTP 500']);
  assert.deepEqual(pick(await runCheck(check(`http://127.0.0.1:${refusedPort}/`), 2000)), [false, 'ECONNREFUSED']);
});

test('an HTTP check counts a redirect as an answer and does not follow it', async () => {
  redirectTargetHits = 0;
  assert.deepEqual(pick(await runCheck(check(`${base}/redirect`), 2000)), [true, 'HTTP 302']);
  assert.equal(redirectTargetHits, 0);
});

test('an HTTP check gives up after its timeout on a target that never answers', async () => {
  const result = await runCheck(check(`${base}/hang`), 150);
  assert.deepEqual(pick(result), [false, 'timeout']);
  assert.ok(result.latencyMs >= 140 && result.latencyMs < 1500, `latency ${result.latencyMs}`);
});

test('an HTTP check does not read an endless body', async () => {
  const result = await runCheck(check(`${base}/endless`), 1000);
  assert.deepEqual(pick(result), [true, 'HTTP 200']);
  assert.ok(result.latencyMs < 900);
});

test('an HTTPS check reports a TLS failure by its code', async () => {
  // A plain HTTP server spoken to over TLS: the handshake fails at once.
  const result = await runCheck(check(`https://127.0.0.1:${(web.address() as AddressInfo).port}/ok`), 2000);
  assert.equal(result.ok, false);
  assert.notEqual(result.detail, 'timeout');
});

test('a TCP check is ok when a connection opens and fails when it is refused', async () => {
  assert.deepEqual(pick(await runCheck(check(`db=tcp://127.0.0.1:${tcpPort}`), 2000)), [true, 'connected']);
  assert.deepEqual(pick(await runCheck(check(`db=tcp://127.0.0.1:${refusedPort}`), 2000)), [false, 'ECONNREFUSED']);
});

test('a TCP check gives up after its timeout on a port that never completes the handshake', async () => {
  // A listener that never accepts: its child process blocks its own event loop. Once its
  // accept queue (backlog 1, so two connections) is full, the kernel drops further SYNs
  // and a connect hangs, as it does towards a host that has gone away.
  const blocker = spawn(process.execPath, ['-e', `
    const server = require('node:net').createServer();
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(server.address().port + '\\n');
      const end = Date.now() + 15000;
      while (Date.now() < end);
    });`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const fillers: net.Socket[] = [];
  try {
    const port = Number(await withDeadline(new Promise<string>((resolve) => blocker.stdout.once('data', (d: Buffer) => resolve(d.toString()))), 10_000, 'blocker start'));
    for (let i = 0; i < 2; i++) {
      const filler = net.connect(port, '127.0.0.1');
      filler.on('error', () => {});
      await new Promise((resolve) => filler.once('connect', resolve));
      fillers.push(filler);
    }
    const result = await runCheck(check(`db=tcp://127.0.0.1:${port}`), 300);
    assert.deepEqual(pick(result), [false, 'timeout']);
    assert.ok(result.latencyMs >= 290 && result.latencyMs < 2000, `latency ${result.latencyMs}`);
  } finally {
    for (const filler of fillers) filler.destroy();
    blocker.kill('SIGKILL');
  }
});

test('a check of a name that does not resolve fails with the resolver error', async () => {
  const result = await runCheck(check('tcp://name.invalid:80'), 2000);
  assert.equal(result.ok, false);
  assert.match(result.detail, /^(ENOTFOUND|EAI_AGAIN|timeout)$/);
});

test('the overall status is up with no checks or all ok, degraded with some failing, down with all failing', () => {
  const r = (ok: boolean): CheckResult => ({ name: 'x', kind: 'tcp', target: 'tcp://x:1', ok, latencyMs: 1, detail: '' });
  assert.equal(overallStatus([]), 'up');
  assert.equal(overallStatus([r(true), r(true)]), 'up');
  assert.equal(overallStatus([r(true), r(false)]), 'degraded');
  assert.equal(overallStatus([r(false), r(false)]), 'down');
});

test('a hanging check delays neither heartbeats, nor other streams, nor /healthz', async () => {
  const service = await startInProcess({
    STATUS_INTERVAL_MS: '60000', CHECK_TIMEOUT_MS: '3000', HEARTBEAT_MS: '200',
    CHECKS: `hang=${base}/hang,ok=${base}/ok,db=tcp://127.0.0.1:${refusedPort}`,
  });
  try {
    const started = Date.now();
    const a = await openStream(`${service.url}/events`);
    const b = await openStream(`${service.url}/events`);
    // The round waits for the hanging check; meanwhile both streams get heartbeats...
    await a.waitFor((x) => x.comment === 'heartbeat', 3, 2500, 'heartbeats');
    await b.waitFor((x) => x.comment === 'heartbeat', 3, 2500, 'heartbeats');
    // ...and /healthz answers at once.
    const t0 = Date.now();
    assert.equal((await request(`${service.url}/healthz`)).status, 200);
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(a.events.length, 0);
    // Then the round ends with the timeout and both streams get the same snapshot.
    const [snapshot] = await a.waitForEvents(1, 6000);
    await b.waitForEvents(1, 2000);
    assert.ok(Date.now() - started >= 2900);
    const parsed = JSON.parse(snapshot.data!);
    assert.equal(parsed.status, 'degraded');
    assert.deepEqual(parsed.checks.map((c: CheckResult) => [c.name, c.ok, c.detail]), [
      ['hang', false, 'timeout'], ['ok', true, 'HTTP 200'], ['db', false, 'ECONNREFUSED'],
    ]);
    assert.ok(service.logs.some((l) => l.level === 40 && l.msg === 'check failed' && l.check === 'hang' && l.detail === 'timeout'));
    a.close();
    b.close();
  } finally {
    await service.close();
  }
});

function pick(result: CheckResult): [boolean, string] {
  return [result.ok, result.detail];
}
