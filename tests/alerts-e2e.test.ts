// Alerts end to end (docs/alerts.md): local webhook receivers get each transition (json, slack),
// filtered by `on` and `checks`, retried after a 5xx, counted in /metrics; a receiver that hangs
// delays no snapshot; URLs never appear in logs past scheme and host; maintenance silences alerts;
// on SIGTERM waiting alerts are still delivered within the grace.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import type http from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  type Delivery,
  metricValue,
  openStream,
  type Receiver,
  type Reply,
  request,
  sleep,
  startInProcess,
  startReceiver,
  startService,
  startTarget,
  type Target,
  tempDir,
  waitFor,
  withDeadline,
} from './helpers.ts';

// The watched target: the test flips its answer.
let code = 200;
let target: Target;

// The webhook receiver. Each path prefix behaves its own way; every POST is kept.
let receiver: Receiver;
/** Called when a /late request arrives (before it is answered, 500 ms later). */
let onLate: () => void = () => {};
function respond({ path }: Delivery, res: http.ServerResponse, seen: number): void {
  if (path.startsWith('/hang')) return; // never answers
  if (path.startsWith('/reject')) return void res.writeHead(400).end();
  if (path.startsWith('/retry')) return void res.writeHead(seen === 1 ? 503 : 200).end();
  if (path.startsWith('/late')) {
    onLate();
    setTimeout(() => res.writeHead(200).end(), 500);
    return;
  }
  res.writeHead(204).end();
}

let targetUrl = '';
let hooks = '';

before(async () => {
  target = await startTarget(() => ({ code }));
  receiver = await startReceiver(respond);
  targetUrl = `${target.url}/health`;
  hooks = receiver.url;
});
after(async () => {
  await target?.close();
  await receiver?.close();
});

function configFile(document: unknown): string {
  const file = join(tempDir('alerts'), 'config.json');
  writeFileSync(file, JSON.stringify(document));
  return file;
}

interface Received {
  readonly path: string;
  readonly body: Record<string, unknown>;
  readonly headers: http.IncomingHttpHeaders;
}

/** What `path` (the query left out) received, each body parsed as JSON. */
const to = (path: string): Received[] =>
  receiver.received
    .filter((r) => r.path.split('?')[0] === path)
    .map((r) => ({ path, body: JSON.parse(r.body) as Record<string, unknown>, headers: r.headers }));

/** Every secret part of the webhook URLs below: none may reach a log line. */
const SECRETS = ['T0SECRET', 'QSECRET', 'hunter2'];

function assertNoSecrets(lines: readonly string[]): void {
  for (const line of lines) {
    for (const secret of SECRETS) assert.ok(!line.includes(secret), `${secret} in a log line: ${line}`);
  }
}

test('webhooks get each transition: json with status and service, slack text, filters, retries, counted', async () => {
  receiver.received.length = 0;
  code = 200;
  const file = configFile({
    checks: [{ name: 'web', url: targetUrl }],
    alerts: [
      { url: `${hooks}/json/T0SECRET1?key=QSECRET1`, format: 'json' },
      { url: `${hooks}/slack/T0SECRET2`, format: 'slack', on: ['down'], checks: ['web'] },
      { url: `http://user:hunter2@127.0.0.1:${new URL(hooks).port}/reject/T0SECRET3`, on: ['down'] },
      { url: `${hooks}/retry/T0SECRET4?QSECRET4`, on: ['up'], checks: ['web'] },
    ],
  });
  const service = await startInProcess({
    CONFIG_FILE: file,
    STATUS_INTERVAL_MS: '100',
    HEARTBEAT_MS: '0',
    LOG_LEVEL: 'debug',
    TITLE: 'Shop',
  });
  try {
    await waitFor(() => service.poller.latest !== null, 10_000, 'the first snapshot');
    assert.equal(receiver.received.length, 0, 'a healthy start alerts nobody');
    code = 503;
    await waitFor(() => to('/json/T0SECRET1').length === 2, 10_000, 'two json alerts (web, overall)');
    const [web, overall] = to('/json/T0SECRET1').map((r) => r.body);
    assert.deepEqual(
      { ...web, time: undefined, service: undefined },
      {
        time: undefined,
        check: 'web',
        from: 'up',
        to: 'down',
        reason: 'HTTP 503, expected 200-399',
        status: 'down',
        service: undefined,
      },
    );
    assert.match(String(web.time), /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual(Object.keys(web.service as object), ['hostname', 'version', 'title']);
    assert.deepEqual(
      { ...(web.service as object), hostname: undefined },
      { hostname: undefined, version: 'test', title: 'Shop' },
    );
    assert.deepEqual(
      { check: overall.check, from: overall.from, to: overall.to, status: overall.status },
      {
        check: null,
        from: 'up',
        to: 'down',
        status: 'down',
      },
    );
    const [json] = to('/json/T0SECRET1');
    assert.equal(json.headers['content-type'], 'application/json');
    assert.equal(json.headers['user-agent'], 'status-stream/test (alerts)');

    await waitFor(() => to('/slack/T0SECRET2').length === 1, 10_000, 'the slack alert');
    const text = String(to('/slack/T0SECRET2')[0].body.text);
    assert.match(text, /^:red_circle: web is down: HTTP 503, expected 200-399 \(Shop on .+\)$/);
    assert.deepEqual(Object.keys(to('/slack/T0SECRET2')[0].body), ['text']);

    code = 200;
    await waitFor(() => to('/json/T0SECRET1').length === 4, 10_000, 'the recovery alerts');
    assert.deepEqual(
      to('/json/T0SECRET1')
        .slice(2)
        .map((r) => [r.body.check, r.body.to, r.body.status]),
      [
        ['web', 'up', 'up'],
        [null, 'up', 'up'],
      ],
    );
    // The retry target answers 503 first: the alert goes again a second later.
    await waitFor(() => to('/retry/T0SECRET4').length === 2, 15_000, 'a retried alert');
    await waitFor(
      async () =>
        metricValue((await request(`${service.url}/metrics`)).body, 'status_alerts_total{result="sent"}') === 6,
      10_000,
      'six alerts sent',
    );
    const metrics = (await request(`${service.url}/metrics`)).body;
    assert.equal(metricValue(metrics, 'status_alerts_total{result="failed"}'), 2, 'the 400s are not retried');
    assert.equal(metricValue(metrics, 'status_alerts_total{result="dropped"}'), 0);
    assert.equal(to('/reject/T0SECRET3').length, 2);
    assert.equal(to('/slack/T0SECRET2').length, 1, 'on: ["down"] and checks: ["web"] only');

    const lines = service.logs.map((l) => JSON.stringify(l));
    assertNoSecrets(lines);
    const failed = service.logs.filter((l) => l.msg === 'alert failed');
    assert.equal(failed.length, 2);
    assert.equal(failed[0].target, `http://127.0.0.1:${new URL(hooks).port}`);
    assert.ok(service.logs.some((l) => l.msg === 'alert attempt failed; retrying'));
  } finally {
    await service.close();
  }
});

test('a receiver that hangs delays no snapshot and no request', async () => {
  receiver.received.length = 0;
  code = 200;
  const file = configFile({ checks: [{ name: 'web', url: targetUrl }], alerts: [{ url: `${hooks}/hang/T0SECRET5` }] });
  const INTERVAL_MS = 200;
  const service = await startInProcess({
    CONFIG_FILE: file,
    STATUS_INTERVAL_MS: String(INTERVAL_MS),
    HEARTBEAT_MS: '0',
    SHUTDOWN_GRACE_MS: '1000',
  });
  try {
    await waitFor(() => service.poller.latest !== null, 10_000, 'the first snapshot');
    const stream = await openStream(`${service.url}/events?events=message`);
    code = 503;
    await waitFor(() => to('/hang/T0SECRET5').length >= 1, 10_000, 'the alert to arrive');
    const from = stream.events.length;
    // The POST is held for its 5 s timeout; meanwhile snapshots keep their interval.
    // /status answers while the POST is held (the next snapshot says down).
    await waitFor(
      async () => (JSON.parse((await request(`${service.url}/status`)).body) as { status: string }).status === 'down',
      5000,
      '/status to say down',
    );
    await sleep(3000);
    stream.close();
    const during = stream.events.slice(from);
    assert.equal(service.alerter.inFlight, 1, 'the alert is still waiting for its answer');
    assert.ok(during.length >= 5, `${during.length} snapshots in 3 s at a ${INTERVAL_MS} ms interval`);
    const gaps = during.slice(1).map((e, i) => e.at - during[i].at);
    assert.ok(
      Math.max(...gaps) < 2500,
      `longest gap between snapshots ${Math.max(...gaps)} ms, the alert timeout is 5000`,
    );
  } finally {
    await service.close();
  }
  // The grace ran out on the hung POST and the overall alert behind it: dropped and counted.
  assert.equal(service.alerter.stats.dropped, 2);
  receiver.server.closeAllConnections();
});

test('during maintenance no alert is sent, and transitions are still recorded', async () => {
  receiver.received.length = 0;
  code = 200;
  const token = 'maintenance-token';
  const file = configFile({ checks: [{ name: 'web', url: targetUrl }], alerts: [{ url: `${hooks}/json/T0SECRET6` }] });
  const service = await startInProcess({
    CONFIG_FILE: file,
    STATUS_INTERVAL_MS: '100',
    HEARTBEAT_MS: '0',
    PUBLISH_TOKEN: token,
  });
  try {
    await waitFor(() => service.poller.latest !== null, 10_000, 'the first snapshot');
    const put = await sendJson(`${service.url}/announcement`, 'PUT', token, { text: 'Upgrading', maintenance: true });
    assert.equal(put.status, 200, put.body);
    code = 503;
    const transitions = async (): Promise<number> =>
      (JSON.parse((await request(`${service.url}/history?range=1h`)).body) as { transitions: [] }).transitions.length;
    await waitFor(async () => (await transitions()) === 2, 10_000, 'web and overall down, recorded');
    await sleep(300);
    assert.equal(to('/json/T0SECRET6').length, 0);
    // After maintenance, the next transition is sent again.
    assert.equal((await sendJson(`${service.url}/announcement`, 'DELETE', token)).status, 204);
    code = 200;
    await waitFor(() => to('/json/T0SECRET6').length === 2, 10_000, 'the recovery alerts');
  } finally {
    await service.close();
  }
});

test('a reload with a bad alert names it by scheme and host only', async () => {
  const file = configFile({ checks: [{ name: 'web', url: targetUrl }] });
  const service = await startInProcess({ CONFIG_FILE: file, HEARTBEAT_MS: '0' });
  try {
    writeFileSync(
      file,
      JSON.stringify({
        checks: [{ name: 'web', url: targetUrl }],
        alerts: [
          { url: 'ftp://hooks.example/T0SECRET7?QSECRET7', format: 'json' },
          { url: `${hooks}/json/T0SECRET8`, format: 'xml', checks: ['nope'] },
        ],
      }),
    );
    service.reload();
    const errors = service.logs.filter((l) => l.level === 50).map((l) => String(l.problem));
    assert.equal(errors.length, 3, errors.join('\n'));
    assert.match(errors[0], /alerts\[0\]\.url must be an http:\/\/ or https:\/\/ URL, got "ftp:\/\/hooks\.example"/);
    assert.match(errors[1], /alerts\[1\]\.format must be "json" or "slack", got "xml"/);
    assert.match(errors[2], /alerts\[1\]\.checks\[0\] must be the name of a check, got "nope"/);
    assertNoSecrets(errors);
  } finally {
    await service.close();
  }
});

test('on SIGTERM, waiting alerts get what is left of the grace', async () => {
  receiver.received.length = 0;
  code = 200;
  const file = configFile({ checks: [{ name: 'web', url: targetUrl }], alerts: [{ url: `${hooks}/late/T0SECRET9` }] });
  const service = await startService({
    CONFIG_FILE: file,
    STATUS_INTERVAL_MS: '100',
    HEARTBEAT_MS: '0',
    LOG_LEVEL: 'debug',
  });
  // The first alert arrives: the service is told to stop while it waits 500 ms for the answer,
  // and the second alert (the overall status) still waits its turn behind it.
  onLate = () => {
    onLate = () => {};
    process.kill(service.pid, 'SIGTERM');
  };
  try {
    await waitFor(() => service.logs.some((l) => l.includes('"msg":"listening"')), 10_000, 'listening');
    code = 503;
    assert.equal(await withDeadline(service.exited, 15_000, 'the service to exit'), 0);
  } finally {
    onLate = () => {};
    await service.stop();
  }
  assert.deepEqual(
    to('/late/T0SECRET9').map((r) => r.body.check),
    ['web', null],
  );
  const logs = service.logs.map((l) => JSON.parse(l) as { msg: string });
  assert.equal(logs.filter((l) => l.msg === 'alert sent').length, 2, service.logs.join('\n'));
  assert.equal(logs.filter((l) => l.msg === 'alert dropped').length, 0);
  assertNoSecrets(service.logs);
});

/** A request with a bearer token and an optional JSON body. */
function sendJson(url: string, method: string, token: string, body?: unknown): Promise<Reply> {
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  return request(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}
