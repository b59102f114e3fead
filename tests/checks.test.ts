// http and tcp checks against real local targets: status codes and ranges, body and JSON
// conditions, slow answers, redirects, timeouts, hostile targets (endless bodies, a flood
// of 1xx responses), credentials and query values, and a run that can never reject.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import {
  type CheckDefinition,
  type Outcome,
  PushLog,
  parseCheckDefinitions,
  parseCheckList,
  runCheck,
} from '../checks/index.ts';
import { freePort, sleep, waitFor, withDeadline } from './helpers.ts';

const DEFAULTS = { timeoutMs: 2000, intervalMs: 10_000 };
const CONTEXT = { pushes: new PushLog(), startedAtMs: Date.now() };
const MIB = 1024 * 1024;

let base = '';
let redirectTargetHits = 0;
const seen: Array<{ url: string; headers: http.IncomingHttpHeaders; remotePort: number }> = [];
const held = new Set<http.ServerResponse>();
let endlessClosed = 0;

const web = http.createServer((req, res) => {
  seen.push({ url: req.url ?? '', headers: req.headers, remotePort: req.socket.remotePort ?? 0 });
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  switch (path) {
    case '/ok':
      res.end('fine');
      break;
    case '/fail':
      res.writeHead(500).end('broken');
      break;
    case '/no-content':
      res.writeHead(204).end();
      break;
    case '/unavailable':
      res.writeHead(503).end();
      break;
    case '/redirect':
      res.writeHead(302, { Location: '/redirected' }).end();
      break;
    case '/redirected':
      redirectTargetHits++;
      res.writeHead(500).end();
      break;
    case '/hang':
      held.add(res);
      break; // never answers
    case '/slow':
      setTimeout(() => res.end('late'), 300);
      break;
    case '/up':
      res.end('{"status": "UP"}');
      break;
    case '/down':
      res.end('status: DOWN');
      break;
    case '/json':
      res.end(JSON.stringify({ status: 'UP', n: 3, list: [{ c: true, d: null }], nested: { a: { b: [1, 2] } } }));
      break;
    case '/not-json':
      res.end('<html>UP</html>');
      break;
    case '/exactly-1mib':
      res.end('x'.repeat(MIB - 2) + 'UP');
      break;
    case '/declared-large':
      res.writeHead(200, { 'content-length': String(MIB + 1) }).write('x');
      held.add(res);
      break;
    case '/head-only':
      res.writeHead(200).flushHeaders();
      held.add(res);
      break;
    case '/cut-short':
      res.writeHead(200, { 'content-length': '100' }).write('UP');
      setTimeout(() => res.destroy(), 50);
      break;
    case '/endless': {
      // Writes as fast as the client reads, for ever.
      res.writeHead(200);
      held.add(res);
      res.on('close', () => {
        endlessClosed++;
        held.delete(res);
      });
      const chunk = Buffer.alloc(65_536, 'x');
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk));
      };
      res.on('drain', pump);
      pump();
      break;
    }
    default:
      res.writeHead(404).end();
  }
});

// Interim responses: /n sends n `102 Processing` and then 200; /flood sends them for ever.
let floodClosed = 0;
const interim = net.createServer((socket) => {
  socket.on('error', () => {});
  socket.once('data', (head) => {
    const path = /^GET (\S+)/.exec(head.toString())?.[1] ?? '';
    const line = 'HTTP/1.1 102 Processing\r\n\r\n';
    if (path === '/flood') {
      socket.on('close', () => floodClosed++);
      const chunk = line.repeat(2000);
      const pump = (): void => {
        while (!socket.destroyed && socket.write(chunk));
      };
      socket.on('drain', pump);
      pump();
      return;
    }
    socket.end(
      line.repeat(Number(path.slice(1))) + 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n',
    );
  });
});

const tcp = net.createServer((socket) => socket.end());
let tcpPort = 0;
let interimBase = '';
let refusedPort = 0;

before(async () => {
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => interim.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
  interimBase = `http://127.0.0.1:${(interim.address() as AddressInfo).port}`;
  tcpPort = (tcp.address() as AddressInfo).port;
  refusedPort = await freePort();
});
after(() => {
  for (const res of held) res.destroy();
  web.closeAllConnections();
  web.close();
  interim.close();
  tcp.close();
});

/** One definition from a CONFIG_FILE-style entry; fails the test on any problem. */
function define(entry: Record<string, unknown>): CheckDefinition {
  const { checks, problems } = parseCheckDefinitions([{ name: 't', ...entry }], 'test.json', DEFAULTS, new Set());
  assert.deepEqual(problems, []);
  return checks[0];
}

async function run(entry: Record<string, unknown>): Promise<Outcome> {
  return withDeadline(runCheck(define(entry), CONTEXT), 15_000, `check of ${String(entry.url)}`);
}

/** state, detail and reason: what most tests compare. */
function summary(outcome: Outcome): [string, string, string | null] {
  return [outcome.state, outcome.detail, outcome.reason];
}

test('an http check is up for 200 and reports the code and the latency', async () => {
  const outcome = await run({ url: `${base}/ok` });
  assert.deepEqual({ ...outcome, latencyMs: 0 }, { state: 'up', detail: 'HTTP 200', reason: null, latencyMs: 0 });
  assert.ok(outcome.latencyMs > 0 && outcome.latencyMs < 2000, `latency ${outcome.latencyMs}`);
});

test('an http check is down on 500, saying which codes were expected', async () => {
  assert.deepEqual(summary(await run({ url: `${base}/fail` })), ['down', 'HTTP 500', 'HTTP 500, expected 200-399']);
});

test('a refused connection is down with its code as the detail and words as the reason', async () => {
  assert.deepEqual(summary(await run({ url: `http://127.0.0.1:${refusedPort}/` })), [
    'down',
    'ECONNREFUSED',
    'connection refused',
  ]);
});

test('a redirect is an answer, and it is not followed', async () => {
  redirectTargetHits = 0;
  assert.deepEqual(summary(await run({ url: `${base}/redirect` })), ['up', 'HTTP 302', null]);
  assert.equal(redirectTargetHits, 0);
});

test('expect.status takes codes and ranges', async () => {
  assert.deepEqual(summary(await run({ url: `${base}/no-content`, expect: { status: [204] } })), [
    'up',
    'HTTP 204',
    null,
  ]);
  assert.deepEqual(summary(await run({ url: `${base}/ok`, expect: { status: [204, '300-308'] } })), [
    'down',
    'HTTP 200',
    'HTTP 200, expected 204, 300-308',
  ]);
  assert.deepEqual(summary(await run({ url: `${base}/unavailable`, expect: { status: '500-599' } })), [
    'up',
    'HTTP 503',
    null,
  ]);
  assert.deepEqual(summary(await run({ url: `${base}/redirect`, expect: { status: ['200-299'] } })), [
    'down',
    'HTTP 302',
    'HTTP 302, expected 200-299',
  ]);
});

test('an http check gives up after its timeout on a target that never answers', async () => {
  const outcome = await run({ url: `${base}/hang`, timeoutMs: 150 });
  assert.deepEqual(summary(outcome), ['down', 'timeout', 'no answer within 150 ms']);
  assert.ok(outcome.latencyMs >= 140 && outcome.latencyMs < 1500, `latency ${outcome.latencyMs}`);
});

test('without a body condition the body is not read, even an endless one', async () => {
  const closedBefore = endlessClosed;
  const outcome = await run({ url: `${base}/endless`, timeoutMs: 10_000 });
  assert.deepEqual(summary(outcome), ['up', 'HTTP 200', null]);
  await waitFor(() => endlessClosed > closedBefore, 5000, 'the endless response to be closed');
});

test('expect.bodyContains reads the body and looks for the text', async () => {
  assert.deepEqual(summary(await run({ url: `${base}/up`, expect: { bodyContains: 'UP' } })), ['up', 'HTTP 200', null]);
  assert.deepEqual(summary(await run({ url: `${base}/down`, expect: { bodyContains: 'UP' } })), [
    'down',
    'HTTP 200',
    'body does not contain "UP"',
  ]);
});

test('a body condition is not looked at when the status is already wrong', async () => {
  assert.deepEqual(summary(await run({ url: `${base}/fail`, expect: { bodyContains: 'broken' } })), [
    'down',
    'HTTP 500',
    'HTTP 500, expected 200-399',
  ]);
});

test('expect.json compares the value at a path by strict JSON equality', async () => {
  const json = (path: string, equals: unknown): Promise<Outcome> =>
    run({ url: `${base}/json`, expect: { json: { path, equals } } });
  assert.deepEqual(summary(await json('status', 'UP')), ['up', 'HTTP 200', null]);
  assert.deepEqual(summary(await json('status', 'DOWN')), ['down', 'HTTP 200', '$.status is "UP", expected "DOWN"']);
  assert.deepEqual(summary(await json('n', 3)), ['up', 'HTTP 200', null]);
  assert.deepEqual(summary(await json('n', '3')), ['down', 'HTTP 200', '$.n is 3, expected "3"']);
  assert.deepEqual(summary(await json('list.0.c', true)), ['up', 'HTTP 200', null]);
  assert.deepEqual(summary(await json('list.0.d', null)), ['up', 'HTTP 200', null]);
  assert.deepEqual(summary(await json('nested', { a: { b: [1, 2] } })), ['up', 'HTTP 200', null]);
  assert.deepEqual(summary(await json('nested', { a: { b: [2, 1] } })), [
    'down',
    'HTTP 200',
    '$.nested is {"a":{"b":[1,2]}}, expected {"a":{"b":[2,1]}}',
  ]);
  assert.deepEqual(summary(await json('list.1.c', true)), ['down', 'HTTP 200', '$.list.1 is missing, expected true']);
  assert.deepEqual(summary(await json('status.x', 'UP')), ['down', 'HTTP 200', '$.status.x is missing, expected "UP"']);
  assert.deepEqual(
    summary(await run({ url: `${base}/not-json`, expect: { json: { path: 'status', equals: 'UP' } } })),
    ['down', 'HTTP 200', 'body is not JSON'],
  );
});

test('a body of exactly 1 MiB is read whole', async () => {
  assert.deepEqual(
    summary(await run({ url: `${base}/exactly-1mib`, timeoutMs: 10_000, expect: { bodyContains: 'UP' } })),
    ['up', 'HTTP 200', null],
  );
});

test('an endless body fails the check past 1 MiB, and reading stops at once', async () => {
  const closedBefore = endlessClosed;
  // Far longer than reading 1 MiB takes: a check that kept reading would end as a timeout.
  const outcome = await run({ url: `${base}/endless`, timeoutMs: 20_000, expect: { bodyContains: 'never there' } });
  assert.deepEqual(summary(outcome), ['down', 'HTTP 200', 'body larger than 1 MiB']);
  await waitFor(() => endlessClosed > closedBefore, 5000, 'the endless response to be closed');
});

test('a body declared larger than 1 MiB fails the check before any of it is read', async () => {
  const outcome = await run({ url: `${base}/declared-large`, timeoutMs: 20_000, expect: { bodyContains: 'UP' } });
  assert.deepEqual(summary(outcome), ['down', 'HTTP 200', 'body larger than 1 MiB']);
});

test('a body cut short is down', async () => {
  const outcome = await run({ url: `${base}/cut-short`, expect: { bodyContains: 'UP' } });
  assert.equal(outcome.state, 'down');
  assert.notEqual(outcome.detail, 'timeout');
});

test('a body that does not arrive within the timeout is a timeout that says so', async () => {
  const outcome = await run({ url: `${base}/head-only`, timeoutMs: 300, expect: { bodyContains: 'UP' } });
  assert.deepEqual(summary(outcome), ['down', 'timeout', 'no complete body within 300 ms']);
});

test('degradedMs makes a passing but slow answer degraded', async () => {
  const slow = await run({ url: `${base}/slow`, degradedMs: 100 });
  assert.equal(slow.state, 'degraded');
  assert.equal(slow.detail, 'HTTP 200');
  assert.match(slow.reason ?? '', /^slow: \d+ ms > 100 ms$/);
  assert.ok(slow.latencyMs > 100);
  assert.deepEqual(summary(await run({ url: `${base}/slow`, degradedMs: 1500 })), ['up', 'HTTP 200', null]);
  assert.deepEqual(summary(await run({ url: `${base}/slow` })), ['up', 'HTTP 200', null]);
});

test('a failing condition outranks slowness: down, with its own reason', async () => {
  assert.deepEqual(summary(await run({ url: `${base}/slow`, degradedMs: 100, expect: { status: [204] } })), [
    'down',
    'HTTP 200',
    'HTTP 200, expected 204',
  ]);
});

test('up to 10 interim (1xx) responses are fine; the final answer counts', async () => {
  assert.deepEqual(summary(await run({ url: `${interimBase}/10` })), ['up', 'HTTP 200', null]);
});

test('a target that floods 1xx responses fails after the 11th, and the connection is closed at once', async () => {
  const closedBefore = floodClosed;
  const cpuBefore = process.cpuUsage();
  // A timeout far longer than the check needs: a check that kept parsing would end as a timeout.
  const outcome = await run({ url: `${interimBase}/flood`, timeoutMs: 20_000 });
  assert.deepEqual(summary(outcome), ['down', 'HTTP 102', 'more than 10 informational (1xx) responses']);
  await waitFor(() => floodClosed > closedBefore, 5000, 'the flooding connection to be closed');
  const cpu = process.cpuUsage(cpuBefore);
  // Bounded work: far less than the 20 s it would otherwise have spent parsing.
  assert.ok(cpu.user + cpu.system < 5_000_000, `cpu ${cpu.user + cpu.system} µs`);
});

test('credentials in the url are sent as basic auth and never shown; query values are sent and not shown', async () => {
  seen.length = 0;
  const def = define({
    url: `http://admin:p%40ss@127.0.0.1:${(web.address() as AddressInfo).port}/ok?apikey=Pa55&v=2`,
  });
  assert.equal(def.target, `${base}/ok?apikey=…&v=…`);
  assert.deepEqual(summary(await runCheck(def, CONTEXT)), ['up', 'HTTP 200', null]);
  assert.equal(seen[0].url, '/ok?apikey=Pa55&v=2');
  assert.equal(seen[0].headers.authorization, `Basic ${Buffer.from('admin:p@ss').toString('base64')}`);
});

test('each run opens a fresh connection and asks for it to be closed', async () => {
  seen.length = 0;
  const def = define({ url: `${base}/ok` });
  await runCheck(def, CONTEXT);
  await runCheck(def, CONTEXT);
  assert.equal(seen.length, 2);
  assert.equal(seen[0].headers.connection, 'close');
  assert.equal(seen[0].headers['user-agent'], 'status-stream');
  assert.notEqual(seen[0].remotePort, seen[1].remotePort);
});

test('an https check of a plain http server fails at the handshake, not by timeout', async () => {
  const outcome = await run({ url: `https://127.0.0.1:${(web.address() as AddressInfo).port}/ok` });
  assert.equal(outcome.state, 'down');
  assert.notEqual(outcome.detail, 'timeout');
});

test('a tcp check is up when a connection opens and down when it is refused', async () => {
  const [db] = parseCheckList(`db=tcp://127.0.0.1:${tcpPort}`, DEFAULTS).checks;
  assert.deepEqual(summary(await runCheck(db, CONTEXT)), ['up', 'connected', null]);
  const [refused] = parseCheckList(`db=tcp://127.0.0.1:${refusedPort}`, DEFAULTS).checks;
  assert.deepEqual(summary(await runCheck(refused, CONTEXT)), ['down', 'ECONNREFUSED', 'connection refused']);
});

test('a tcp check gives up after its timeout on a port that never completes the handshake', async () => {
  // A listener that never accepts: its child process blocks its own event loop. Once its
  // accept queue (backlog 1, so two connections) is full, the kernel drops further SYNs
  // and a connect hangs, as it does towards a host that has gone away.
  const blocker = spawn(
    process.execPath,
    [
      '-e',
      `
    const server = require('node:net').createServer();
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(server.address().port + '\\n');
      const end = Date.now() + 15000;
      while (Date.now() < end);
    });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const fillers: net.Socket[] = [];
  try {
    const port = Number(
      await withDeadline(
        new Promise<string>((resolve) => blocker.stdout.once('data', (d: Buffer) => resolve(d.toString()))),
        10_000,
        'blocker start',
      ),
    );
    for (let i = 0; i < 2; i++) {
      const filler = net.connect(port, '127.0.0.1');
      filler.on('error', () => {});
      await new Promise((resolve) => filler.once('connect', resolve));
      fillers.push(filler);
    }
    const outcome = await run({ url: `tcp://127.0.0.1:${port}`, timeoutMs: 300 });
    assert.deepEqual(summary(outcome), ['down', 'timeout', 'no connection within 300 ms']);
    assert.ok(outcome.latencyMs >= 290 && outcome.latencyMs < 2000, `latency ${outcome.latencyMs}`);
  } finally {
    for (const filler of fillers) filler.destroy();
    if (blocker.pid !== undefined) process.kill(blocker.pid, 'SIGKILL');
  }
});

test('a check of a name that does not resolve is down with the resolver error', async () => {
  const outcome = await run({ url: 'tcp://name.invalid:80' });
  assert.equal(outcome.state, 'down');
  assert.match(outcome.detail, /^(ENOTFOUND|EAI_AGAIN|timeout)$/);
});

test('runCheck never rejects, even for a definition it cannot run', async () => {
  const broken = { ...define({ url: `${base}/ok` }), url: 'not a url' } as CheckDefinition;
  const outcome = await runCheck(broken, CONTEXT);
  assert.equal(outcome.state, 'down');
  assert.equal(outcome.latencyMs, 0);
  const unknown = { ...define({ url: `${base}/ok` }), kind: 'gopher' } as unknown as CheckDefinition;
  assert.equal((await runCheck(unknown, CONTEXT)).state, 'down');
});

test('a run leaves nothing behind: no socket or timer keeps the process busy', async () => {
  const handles = (): number => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
  await sleep(50);
  const before = handles();
  await run({ url: `${base}/hang`, timeoutMs: 100 });
  await run({ url: `http://127.0.0.1:${refusedPort}/` });
  await sleep(50);
  assert.ok(handles() <= before, `${handles()} handles, ${before} before`);
});
