// Webhook alerts against real local receivers on 127.0.0.1: the config, the json and slack
// bodies, retries with backoff on a 5xx or a network error, none on a 4xx, the timeout of a
// target that never answers (while notify() returns at once and other targets get theirs), the
// on/checks filters, maintenance, the bounded queue, drain() and stop(), and webhook URLs never
// shown beyond scheme and host.

import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, before, test } from 'node:test';
import {
  ALERT_RETRY_DELAYS_MS,
  ALERT_TIMEOUT_MS,
  type AlertContext,
  Alerter,
  type AlertTarget,
  MAX_ALERT_QUEUE,
  parseAlertTargets,
  slackText,
} from '../alerts.ts';
import { createLogger, type Logger } from '../log.ts';
import type { CheckState, Transition } from '../status.ts';
import { type Delivery, freePort, type Receiver, startReceiver, waitFor, withDeadline } from './helpers.ts';

// One receiver; each test uses its own paths. The first segment says how it answers.
const held: http.ServerResponse[] = [];
function respond({ path }: Delivery, res: http.ServerResponse, count: number): void {
  const kind = path.split('/')[1];
  if (kind === 'ok') res.end('ok');
  else if (kind === 'flaky') res.writeHead(count <= 2 ? 500 : 200).end();
  else if (kind === 'bad') res.writeHead(400).end('no');
  else if (kind === 'moved') res.writeHead(302, { location: '/ok/elsewhere' }).end();
  else if (kind === 'broken') res.writeHead(503).end();
  else if (kind === 'hang')
    held.push(res); // accepts, never answers
  else if (kind === 'trickle') {
    res.writeHead(200);
    res.write('x');
    held.push(res);
  } // status, then silence
  else if (kind === 'reset') {
    res.writeHead(202);
    res.write('x');
    setTimeout(() => res.socket?.destroy(), 20);
  } else res.writeHead(404).end();
}
let receiver: Receiver;
let base = '';
let closedPort = 0;

before(async () => {
  receiver = await startReceiver(respond);
  base = receiver.url;
  closedPort = await freePort();
});

after(async () => {
  for (const res of held) res.socket?.destroy();
  await receiver?.close();
});

const CONTEXT: AlertContext = { status: 'degraded', hostname: 'host1', version: '1.2.3', title: 'host1' };

function transition(
  check: string | null,
  to: CheckState,
  reason: string | null = null,
  from: CheckState | null = 'up',
): Transition {
  return { time: '2025-01-02T03:04:05.678Z', check, from, to, reason };
}

function target(url: string, fields: Record<string, unknown> = {}): AlertTarget {
  const { targets, problems } = parseAlertTargets([{ url, ...fields }], 'test.json');
  assert.deepEqual(problems, []);
  return targets[0]!;
}

function capture(): { log: Logger; lines: string[]; records: () => Array<Record<string, unknown>> } {
  const lines: string[] = [];
  return {
    log: createLogger('debug', (line) => lines.push(line)),
    lines,
    records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

const at = (path: string): Delivery[] => receiver.received.filter((r) => r.path === path);
const settled = (a: Alerter): number => a.stats.sent + a.stats.failed + a.stats.dropped;
const FAST = { timeoutMs: 2000, retryDelaysMs: [50, 100, 200] };

// ---------------------------------------------------------------- configuration

test('an alert needs only a url: json format, every state, every check and the overall status', () => {
  const url = 'https://hooks.example.com/services/T0/B0/XYZ';
  const { targets, problems } = parseAlertTargets([{ url }], 'alerts.json');
  assert.deepEqual(problems, []);
  const [t] = targets;
  assert.equal(t!.url, url);
  assert.equal(t!.shownAs, 'https://hooks.example.com');
  assert.equal(t!.format, 'json');
  assert.deepEqual([...t!.on].sort(), ['degraded', 'down', 'up']);
  assert.equal(t!.checks, null);
  assert.ok(Object.isFrozen(t));

  const entry = { url: 'http://chat.example:8065/hooks/k', format: 'slack', on: ['down'], checks: ['web', 'db'] };
  const full = parseAlertTargets([entry], 'alerts.json', new Set(['web', 'db']));
  assert.deepEqual(full.problems, []);
  assert.equal(full.targets[0]!.shownAs, 'http://chat.example:8065');
  assert.equal(full.targets[0]!.format, 'slack');
  assert.deepEqual([...full.targets[0]!.on], ['down']);
  assert.deepEqual([...full.targets[0]!.checks!], ['web', 'db']);
});

test('no alerts field means no alerts; one that is not an array is one problem', () => {
  assert.deepEqual(parseAlertTargets(undefined, 'a.json'), { targets: [], problems: [] });
  assert.deepEqual(parseAlertTargets([], 'a.json'), { targets: [], problems: [] });
  assert.deepEqual(parseAlertTargets({ url: 'http://x.example' }, '/etc/s.json').problems, [
    'config: /etc/s.json: alerts must be an array of {url, format, on, checks} objects, got an object',
  ]);
  assert.deepEqual(parseAlertTargets(null, 'a.json').problems, [
    'config: a.json: alerts must be an array of {url, format, on, checks} objects, got null',
  ]);
});

test('every problem is reported at once, naming the file, the alert, the field, the value and what is accepted', () => {
  const { targets, problems } = parseAlertTargets(
    [
      { url: 'http://ok.example/a' },
      {
        url: 'ftp://files.example/x',
        format: 'xml',
        on: ['down', 'Down', 3],
        checks: ['web', '', 'nope'],
        headers: {},
      },
      42,
      { format: 'json', on: [], checks: 'web' },
      { url: 12, on: 'down', checks: [] },
      'mailto:ops@example.com',
    ],
    '/etc/status.json',
    new Set(['web']),
  );
  assert.equal(targets.length, 1);
  assert.deepEqual(problems, [
    'config: /etc/status.json: alerts[1] has an unknown field "headers"; accepted: url, format, on, checks',
    'config: /etc/status.json: alerts[1].url must be an http:// or https:// URL, got "ftp://files.example"',
    'config: /etc/status.json: alerts[1].format must be "json" or "slack", got "xml"',
    'config: /etc/status.json: alerts[1].on[1] must be one of "down", "degraded", "up", got "Down"',
    'config: /etc/status.json: alerts[1].on[2] must be one of "down", "degraded", "up", got 3',
    'config: /etc/status.json: alerts[1].checks[1] must be a check name, got ""',
    'config: /etc/status.json: alerts[1].checks[2] must be the name of a check, got "nope"',
    'config: /etc/status.json: alerts[2] must be an object {url, format, on, checks}, got 42',
    'config: /etc/status.json: alerts[3].url must be an http:// or https:// URL, got nothing (it is required)',
    'config: /etc/status.json: alerts[3].on must be a non-empty array of "down", "degraded", "up", got an array',
    'config: /etc/status.json: alerts[3].checks must be a non-empty array of check names ' +
      '(leave it out for every check and the overall status), got "web"',
    'config: /etc/status.json: alerts[4].url must be an http:// or https:// URL, got a number',
    'config: /etc/status.json: alerts[4].on must be a non-empty array of "down", "degraded", "up", got "down"',
    'config: /etc/status.json: alerts[4].checks must be a non-empty array of check names ' +
      '(leave it out for every check and the overall status), got an array',
    'config: /etc/status.json: alerts[5] must be an object {url, format, on, checks}, got "mailto:ops@example.com"',
  ]);
});

test('config errors show a webhook URL as scheme and host only, wherever it was written', () => {
  const secret = 'https://user:pa55word@hooks.slack.com/services/T000/B000/SECRETSECRET?token=QUERYSECRET#frag';
  const { problems } = parseAlertTargets(
    [
      { url: secret.replace('https:', 'gopher:') },
      { url: 'hooks.slack.com/services/T000/B000/SECRETSECRET' },
      { url: 'javascript:alert(1)//SECRETSECRET' },
      secret,
      [secret],
      { url: 'http://ok.example', format: secret, on: [secret], checks: [secret], [secret]: 1 },
      { url: 'http://ok.example', format: 'hxxp://bad url/SECRETSECRET' },
    ],
    'alerts.json',
    new Set(['web']),
  );
  assert.equal(problems.length, 10);
  for (const problem of problems) {
    for (const leak of ['SECRETSECRET', 'QUERYSECRET', 'pa55word', 'user:', 'T000', 'frag']) {
      assert.ok(!problem.includes(leak), `${problem} shows ${leak}`);
    }
  }
  assert.ok(problems[0]!.endsWith('got "gopher://hooks.slack.com"'), problems[0]);
  assert.ok(problems[1]!.endsWith('got a string of 47 characters that is not an absolute URL'), problems[1]);
  assert.ok(problems[2]!.endsWith('got "javascript:"'), problems[2]);
  assert.ok(problems[3]!.endsWith('got "https://hooks.slack.com…"'), problems[3]);
  assert.ok(problems[4]!.endsWith('got an array'), problems[4]);
  assert.ok(problems.some((p) => p.includes('unknown field "https://hooks.slack.com…"')));
  assert.ok(problems[9]!.endsWith('got "hxxp://bad…"'), problems[9]);
  const format = 'see (ftp://[broken/SECRETSECRET';
  const unparsable = parseAlertTargets([{ url: 'http://ok.example', format }], 'a.json');
  assert.ok(unparsable.problems[0]!.endsWith('got "see (ftp://…"'), unparsable.problems[0]);
});

// ---------------------------------------------------------------- bodies

test('the json body is the transition, the overall status and the service, POSTed as application/json', async () => {
  const alerter = new Alerter({ targets: [target(`${base}/ok/json`)], log: capture().log, ...FAST });
  alerter.notify(transition('web', 'down', 'HTTP 503, expected 200-299'), CONTEXT);
  await waitFor(() => alerter.stats.sent === 1, 5000, 'the alert');
  const [r] = at('/ok/json');
  assert.equal(r!.method, 'POST');
  assert.equal(r!.headers['content-type'], 'application/json');
  assert.equal(r!.headers['content-length'], String(Buffer.byteLength(r!.body)));
  assert.equal(r!.headers['user-agent'], 'status-stream/1.2.3 (alerts)');
  assert.deepEqual(JSON.parse(r!.body), {
    time: '2025-01-02T03:04:05.678Z',
    check: 'web',
    from: 'up',
    to: 'down',
    reason: 'HTTP 503, expected 200-299',
    status: 'degraded',
    service: { hostname: 'host1', version: '1.2.3', title: 'host1' },
  });
  alerter.stop();
});

test('the slack body is one line: an emoji, the check, its state, the reason and the service', async () => {
  const targets = [target(`${base}/ok/slack`, { format: 'slack' })];
  const alerter = new Alerter({ targets, log: capture().log, ...FAST });
  alerter.notify(transition('web', 'down', 'HTTP 503, expected 200-299'), CONTEXT);
  await waitFor(() => alerter.stats.sent === 1, 5000, 'the alert');
  assert.deepEqual(JSON.parse(at('/ok/slack')[0]!.body), {
    text: ':red_circle: web is down: HTTP 503, expected 200-299 (status-stream on host1)',
  });
  alerter.stop();

  const shop = { ...CONTEXT, title: 'Shop' };
  assert.equal(
    slackText(transition('web', 'up', null, 'down'), CONTEXT),
    ':white_check_mark: web is up again (was down) (status-stream on host1)',
  );
  assert.equal(
    slackText(transition('web', 'up', null, null), CONTEXT),
    ':white_check_mark: web is up (status-stream on host1)',
  );
  assert.equal(
    slackText(transition(null, 'degraded', 'slow: 812 ms > 300 ms'), shop),
    ':warning: overall status is degraded: slow: 812 ms &gt; 300 ms (Shop on host1)',
  );
  assert.equal(slackText(transition('db', 'down'), shop), ':red_circle: db is down (Shop on host1)');
});

test('slack text is escaped for Slack, cannot mention a whole channel and stays one bounded line', () => {
  const reason = 'body "<!channel>" @here @Everyone @all\nnext\u0000line';
  const text = slackText(transition('a<b>&c', 'down', reason), CONTEXT);
  assert.equal(
    text,
    ':red_circle: a&lt;b&gt;&amp;c is down: body "&lt;!channel&gt;" ' +
      '@\u200bhere @\u200bEveryone @\u200ball next line (status-stream on host1)',
  );
  const long = slackText(transition('web', 'down', 'x'.repeat(5000)), CONTEXT);
  assert.ok(long.length <= 1000 + ':red_circle: '.length);
  assert.ok(long.endsWith('…'));
});

// ---------------------------------------------------------------- delivery

test('a 500 is retried after each backoff delay until the target answers 200', async () => {
  const { log, records } = capture();
  const alerter = new Alerter({ targets: [target(`${base}/flaky/retry`)], log, ...FAST });
  alerter.notify(transition('web', 'down'), CONTEXT);
  await waitFor(() => alerter.stats.sent === 1, 5000, 'the alert after two 500s');
  const attempts = at('/flaky/retry');
  assert.equal(attempts.length, 3);
  // Lower bounds only (timers never fire early by more than rounding): the waits were honoured.
  assert.ok(attempts[1]!.atMs - attempts[0]!.atMs >= 45, 'waited 50 ms before the 2nd attempt');
  assert.ok(attempts[2]!.atMs - attempts[1]!.atMs >= 95, 'waited 100 ms before the 3rd attempt');
  assert.deepEqual(alerter.stats, { sent: 1, failed: 0, dropped: 0 });
  const retries = records().filter((r) => r.msg === 'alert attempt failed; retrying');
  assert.deepEqual(
    retries.map((r) => [r.level, r.attempt, r.error, r.retryInMs]),
    [
      [20, 1, 'HTTP 500', 50],
      [20, 2, 'HTTP 500', 100],
    ],
  );
  const sent = records().find((r) => r.msg === 'alert sent');
  assert.deepEqual([sent?.level, sent?.attempts, sent?.answer], [20, 3, 'HTTP 200']);
  alerter.stop();
});

test('a 5xx on every attempt fails after the last retry, with one warn line', async () => {
  const { log, records } = capture();
  const targets = [target(`${base}/broken/always`)];
  const alerter = new Alerter({ targets, log, timeoutMs: 2000, retryDelaysMs: [10, 10, 10] });
  alerter.notify(transition('web', 'down'), CONTEXT);
  await waitFor(() => alerter.stats.failed === 1, 5000, 'the failure');
  assert.equal(at('/broken/always').length, 4);
  const failed = records().filter((r) => r.msg === 'alert failed');
  assert.deepEqual(
    failed.map((r) => [r.level, r.attempts, r.error, r.target]),
    [[40, 4, 'HTTP 503', base]],
  );
  alerter.stop();
});

test('a 4xx or a redirect fails at once, without a retry', async () => {
  const { log, records } = capture();
  const alerter = new Alerter({ targets: [target(`${base}/bad/once`), target(`${base}/moved/once`)], log, ...FAST });
  alerter.notify(transition('web', 'down'), CONTEXT);
  await waitFor(() => alerter.stats.failed === 2, 5000, 'two failures');
  await new Promise((resolve) => setTimeout(resolve, 150)); // longer than the first retry delay
  assert.equal(at('/bad/once').length, 1);
  assert.equal(at('/moved/once').length, 1);
  assert.equal(at('/ok/elsewhere').length, 0, 'the redirect is not followed');
  const errors = records()
    .filter((r) => r.msg === 'alert failed')
    .map((r) => r.error);
  assert.deepEqual(errors.sort(), ['HTTP 302', 'HTTP 400']);
  assert.deepEqual(alerter.stats, { sent: 0, failed: 2, dropped: 0 });
  alerter.stop();
});

test('a closed port is a network error: retried, then failed (http and https)', async () => {
  const { log, records } = capture();
  const targets = [target(`http://127.0.0.1:${closedPort}/hook`), target(`https://127.0.0.1:${closedPort}/hook`)];
  const alerter = new Alerter({ targets, log, timeoutMs: 2000, retryDelaysMs: [10, 20, 30] });
  alerter.notify(transition('web', 'down'), CONTEXT);
  await waitFor(() => alerter.stats.failed === 2, 5000, 'two failures');
  const failed = records().filter((r) => r.msg === 'alert failed');
  assert.deepEqual(
    failed.map((r) => [r.attempts, r.error]),
    [
      [4, 'ECONNREFUSED'],
      [4, 'ECONNREFUSED'],
    ],
  );
  assert.equal(records().filter((r) => r.msg === 'alert attempt failed; retrying').length, 6);
  alerter.stop();
});

test('notify() returns at once; a target that never answers times out, other targets get theirs', async () => {
  const { log, records } = capture();
  const alerter = new Alerter({
    targets: [target(`${base}/hang/slow`), target(`${base}/ok/beside-hang`)],
    log,
    timeoutMs: 600,
    retryDelaysMs: [20],
  });
  alerter.notify(transition('web', 'down'), CONTEXT);
  // Nothing ran on the caller's stack beyond queueing: no request has even been started.
  assert.equal(alerter.waiting, 2);
  assert.equal(alerter.inFlight, 0);
  await waitFor(() => at('/ok/beside-hang').length === 1 && alerter.stats.sent === 1, 5000, 'the other target');
  assert.equal(alerter.stats.failed, 0, 'the hanging target is still being waited for');
  await waitFor(() => alerter.stats.failed === 1, 5000, 'the timeout');
  assert.equal(at('/hang/slow').length, 2, 'one attempt and one retry');
  const failed = records().filter((r) => r.msg === 'alert failed');
  assert.deepEqual(
    failed.map((r) => [r.error, r.attempts]),
    [['timeout', 2]],
  );
  await waitFor(
    () => held.every((res) => res.destroyed || res.socket === null || res.socket.destroyed),
    2000,
    'the timed-out connections closed',
  );
  alerter.stop();
});

test('a 2xx whose body never ends counts as sent at the timeout; so does a reset after the status', async () => {
  const alerter = new Alerter({
    targets: [target(`${base}/trickle/x`), target(`${base}/reset/x`)],
    log: capture().log,
    timeoutMs: 500,
    retryDelaysMs: [20],
  });
  alerter.notify(transition('web', 'down'), CONTEXT);
  await waitFor(() => alerter.stats.sent === 2, 5000, 'two alerts');
  assert.equal(at('/trickle/x').length, 1);
  assert.equal(at('/reset/x').length, 1);
  alerter.stop();
});

test('alerts to one target go one at a time, in order', async () => {
  const alerter = new Alerter({ targets: [target(`${base}/ok/order`)], log: capture().log, ...FAST });
  for (let i = 0; i < 5; i++) alerter.notify(transition(`c${i}`, 'down'), CONTEXT);
  await waitFor(() => alerter.stats.sent === 5, 5000, 'five alerts');
  const checks = at('/ok/order').map((r) => (JSON.parse(r.body) as Transition).check);
  assert.deepEqual(checks, ['c0', 'c1', 'c2', 'c3', 'c4']);
  alerter.stop();
});

test('on and checks choose the targets; the overall status goes only to targets without checks', async () => {
  const targets = [
    target(`${base}/ok/all`),
    target(`${base}/ok/down-only`, { on: ['down'] }),
    target(`${base}/ok/web-only`, { checks: ['web'] }),
    target(`${base}/ok/db-up`, { checks: ['db'], on: ['up'] }),
  ];
  const alerter = new Alerter({ targets, log: capture().log, ...FAST });
  const sequence = [
    transition('web', 'down'),
    transition('db', 'degraded'),
    transition(null, 'degraded'),
    transition('db', 'up', null, 'degraded'),
  ];
  for (const t of sequence) alerter.notify(t, CONTEXT);
  await withDeadline(alerter.drain(10_000), 5000, 'every alert');
  assert.equal(alerter.stats.sent, 7);
  const seen = (path: string): string[] =>
    at(path).map((r) => {
      const body = JSON.parse(r.body) as Transition;
      return `${body.check ?? 'overall'}:${body.to}`;
    });
  assert.deepEqual(seen('/ok/all'), ['web:down', 'db:degraded', 'overall:degraded', 'db:up']);
  assert.deepEqual(seen('/ok/down-only'), ['web:down']);
  assert.deepEqual(seen('/ok/web-only'), ['web:down']);
  assert.deepEqual(seen('/ok/db-up'), ['db:up']);
  alerter.stop();
});

test('while suppressed() is true (maintenance) nothing is queued or sent', async () => {
  let maintenance = true;
  const targets = [target(`${base}/ok/maintenance`)];
  const alerter = new Alerter({ targets, log: capture().log, suppressed: () => maintenance, ...FAST });
  alerter.notify(transition('web', 'down'), CONTEXT);
  assert.equal(alerter.waiting, 0);
  maintenance = false;
  alerter.notify(transition('web', 'up', null, 'down'), CONTEXT);
  await waitFor(() => alerter.stats.sent === 1, 5000, 'the alert after maintenance');
  await alerter.drain(1000);
  assert.deepEqual(
    at('/ok/maintenance').map((r) => (JSON.parse(r.body) as Transition).to),
    ['up'],
  );
  assert.deepEqual(alerter.stats, { sent: 1, failed: 0, dropped: 0 });
  alerter.stop();
});

test('a suppressed() that throws is logged and the alert is sent; notify() itself never throws', async () => {
  const { log, records } = capture();
  const alerter = new Alerter({
    targets: [target(`${base}/ok/suppress-throws`)],
    log,
    ...FAST,
    suppressed: () => {
      throw new Error('announcement unreadable');
    },
  });
  alerter.notify(transition('web', 'down'), CONTEXT);
  await waitFor(() => alerter.stats.sent === 1, 5000, 'the alert');
  assert.ok(records().some((r) => r.msg === 'alert suppression check failed; sending' && r.level === 50));

  // A logger that throws cannot make notify() throw either.
  const throwing: Logger = {
    ...log,
    warn: () => {
      throw new Error('stdout gone');
    },
  };
  const stopped = new Alerter({ targets: [target(`${base}/ok/never`)], log: throwing, ...FAST });
  stopped.stop();
  assert.doesNotThrow(() => stopped.notify(transition('web', 'down'), CONTEXT));
  assert.ok(records().some((r) => r.msg === 'alert not queued'));
  alerter.stop();
});

test('a URL that node:http refuses fails without a retry and without showing the URL', async () => {
  const { log, lines } = capture();
  const broken: AlertTarget = { ...target('http://example.com'), url: 'http://exa mple.com/SECRETPATH' };
  const alerter = new Alerter({ targets: [broken], log, ...FAST });
  alerter.notify(transition('web', 'down'), CONTEXT);
  await waitFor(() => alerter.stats.failed === 1, 5000, 'the failure');
  assert.ok(lines.some((line) => line.includes('"error":"ERR_INVALID_URL"')));
  assert.ok(!lines.join('').includes('SECRETPATH'));
  alerter.stop();
});

test('at most maxQueue alerts wait: beyond it the oldest waiting one is dropped, counted and logged', async () => {
  const { log, records } = capture();
  const alerter = new Alerter({ targets: [target(`${base}/hang/queue`)], log, timeoutMs: 60_000, retryDelaysMs: [] });
  for (let i = 0; i < MAX_ALERT_QUEUE + 5; i++) alerter.notify(transition(`c${i}`, 'down'), CONTEXT);
  assert.equal(alerter.stats.dropped, 5);
  assert.equal(alerter.waiting, MAX_ALERT_QUEUE);
  const dropped = records().filter((r) => r.msg === 'alert dropped');
  assert.deepEqual(
    dropped.map((r) => [r.check, r.reason, r.level]),
    [0, 1, 2, 3, 4].map((i) => [`c${i}`, 'queue full', 40]),
  );
  await waitFor(() => at('/hang/queue').length === 1, 5000, 'the first waiting alert to go out');
  assert.equal((JSON.parse(at('/hang/queue')[0]!.body) as Transition).check, 'c5', 'the oldest kept alert goes first');
  assert.equal(alerter.inFlight, 1);
  alerter.stop();
  assert.deepEqual(alerter.stats, { sent: 0, failed: 0, dropped: MAX_ALERT_QUEUE + 5 });
  assert.equal(alerter.waiting, 0);
});

test('the queue bound is over every target: the oldest alert of any target is dropped first', () => {
  const { log, records } = capture();
  const targets = [target(`${base}/hang/qa`), target(`${base}/hang/qb`, { checks: ['b'] })];
  const alerter = new Alerter({ targets, log, maxQueue: 3 });
  const dropped = (): unknown[] =>
    records()
      .filter((r) => r.msg === 'alert dropped')
      .map((r) => `${r.check} ${r.to}`);
  alerter.notify(transition('a', 'down'), CONTEXT); // qa: a down
  alerter.notify(transition('b', 'down'), CONTEXT); // qa: a down, b down; qb: b down
  alerter.notify(transition('a', 'up'), CONTEXT); // qa gets a 4th: the oldest, "a down", goes
  assert.deepEqual(dropped(), ['a down']);
  // Two more: "b down" at qa (older), then "b down" at qb (older than "a up" at qa).
  alerter.notify(transition('b', 'up'), CONTEXT);
  assert.deepEqual(dropped(), ['a down', 'b down', 'b down']);
  alerter.notify(transition('c', 'up'), CONTEXT); // qa's "a up" is now the oldest
  assert.deepEqual(dropped(), ['a down', 'b down', 'b down', 'a up']);
  assert.equal(alerter.stats.dropped, 4);
  assert.equal(alerter.waiting, 3);
  alerter.stop();
});

test('drain() resolves once every alert is sent, and at once when there is nothing to send', async () => {
  const alerter = new Alerter({ targets: [target(`${base}/ok/drain`)], log: capture().log, ...FAST });
  await withDeadline(alerter.drain(1000), 2000, 'an idle drain');
  for (let i = 0; i < 3; i++) alerter.notify(transition(`c${i}`, 'down'), CONTEXT);
  await withDeadline(alerter.drain(10_000), 5000, 'drain');
  assert.deepEqual(alerter.stats, { sent: 3, failed: 0, dropped: 0 });
  assert.equal(at('/ok/drain').length, 3);
  alerter.stop();
});

test('drain() gives up at its deadline: what is left is dropped and counted; later alerts still go out', async () => {
  const { log, records } = capture();
  const targets = [target(`${base}/hang/drain`), target(`${base}/ok/after-drain`, { on: ['up'] })];
  const alerter = new Alerter({ targets, log, timeoutMs: 60_000, retryDelaysMs: [] });
  for (let i = 0; i < 3; i++) alerter.notify(transition(`c${i}`, 'down'), CONTEXT);
  await waitFor(() => at('/hang/drain').length === 1, 5000, 'the first POST');
  const first = held.at(-1)!;
  await withDeadline(alerter.drain(100), 5000, 'drain with a deadline');
  assert.deepEqual(alerter.stats, { sent: 0, failed: 0, dropped: 3 });
  assert.equal(alerter.waiting + alerter.inFlight, 0);
  assert.deepEqual(
    records()
      .filter((r) => r.msg === 'alert dropped')
      .map((r) => [r.check, r.reason]),
    [
      ['c0', 'shutdown'],
      ['c1', 'shutdown'],
      ['c2', 'shutdown'],
    ],
  );
  await waitFor(() => first.socket === null || first.socket.destroyed, 2000, 'the POST under way aborted');
  alerter.notify(transition('web', 'up', null, 'down'), CONTEXT);
  await waitFor(() => alerter.stats.sent === 1, 5000, 'an alert after drain()');
  alerter.stop(); // the "up" to the hanging target is dropped
  assert.deepEqual(alerter.stats, { sent: 1, failed: 0, dropped: 4 });
});

test('stop() aborts a retry wait and a POST under way; alerts after it are dropped', async () => {
  const { log, records } = capture();
  const refused = [target(`http://127.0.0.1:${closedPort}/x`)];
  const waiting = new Alerter({ targets: refused, log, timeoutMs: 2000, retryDelaysMs: [60_000] });
  waiting.notify(transition('web', 'down'), CONTEXT);
  await waitFor(() => records().some((r) => r.msg === 'alert attempt failed; retrying'), 5000, 'the first attempt');
  const hanging = new Alerter({ targets: [target(`${base}/hang/stop`)], log, timeoutMs: 60_000 });
  hanging.notify(transition('web', 'down'), CONTEXT);
  await waitFor(() => at('/hang/stop').length === 1, 5000, 'the POST');
  const res = held.at(-1)!;
  waiting.stop();
  hanging.stop();
  hanging.stop(); // idempotent
  assert.deepEqual(waiting.stats, { sent: 0, failed: 0, dropped: 1 });
  assert.deepEqual(hanging.stats, { sent: 0, failed: 0, dropped: 1 });
  await waitFor(() => res.socket === null || res.socket.destroyed, 2000, 'the connection closed');
  hanging.notify(transition('web', 'up', null, 'down'), CONTEXT);
  assert.equal(hanging.stats.dropped, 2);
  assert.equal(records().filter((r) => r.msg === 'alert dropped' && r.reason === 'stopped').length, 3);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(at('/hang/stop').length, 1, 'nothing sent after stop()');
});

test("a webhook URL's credentials, path and query never appear in a log line; credentials are sent", async () => {
  const { log, lines } = capture();
  const host = base.slice('http://'.length);
  const secretUrls = [
    `http://hookuser:HOOKPASS@${host}/bad/SECRETPATH1?token=SECRETQUERY1`,
    `http://${host}/broken/SECRETPATH2?token=SECRETQUERY2`,
    `http://${host}/hang/SECRETPATH3?token=SECRETQUERY3`,
    `http://127.0.0.1:${closedPort}/SECRETPATH4?token=SECRETQUERY4`,
    `http://${host}/ok/SECRETPATH5?token=SECRETQUERY5`,
  ];
  const targets = secretUrls.map((url) => target(url));
  const alerter = new Alerter({ targets, log, timeoutMs: 200, retryDelaysMs: [10] });
  alerter.notify(transition('web', 'down'), CONTEXT);
  alerter.notify(transition('web', 'up', null, 'down'), CONTEXT);
  await waitFor(() => settled(alerter) === 10, 5000, 'every alert settled');
  const text = lines.join('');
  for (const secret of ['SECRET', 'HOOKPASS', 'hookuser', 'token=']) {
    assert.ok(!text.includes(secret), `logs show ${secret}`);
  }
  assert.ok(text.includes(`"target":${JSON.stringify(base)}`));
  const withAuth = receiver.received.find((r) => r.path.startsWith('/bad/SECRETPATH1'));
  assert.equal(withAuth?.headers.authorization, `Basic ${Buffer.from('hookuser:HOOKPASS').toString('base64')}`);
  alerter.stop();
});

test('setTargets() applies to the next transitions; alerts already queued still go to their target', async () => {
  const alerter = new Alerter({ targets: [target(`${base}/ok/before-reload`)], log: capture().log, ...FAST });
  alerter.notify(transition('web', 'down'), CONTEXT);
  alerter.setTargets([target(`${base}/ok/after-reload`)]);
  alerter.notify(transition('web', 'up', null, 'down'), CONTEXT);
  await withDeadline(alerter.drain(10_000), 5000, 'drain');
  assert.equal(at('/ok/before-reload').length, 1);
  assert.equal(at('/ok/after-reload').length, 1);
  alerter.setTargets([]);
  alerter.notify(transition('web', 'down'), CONTEXT);
  assert.equal(alerter.waiting, 0);
  alerter.stop();
});

test('the defaults: a 5 s timeout, retries after 1, 2 and 4 s, and 1000 waiting alerts', () => {
  assert.equal(ALERT_TIMEOUT_MS, 5000);
  assert.deepEqual(ALERT_RETRY_DELAYS_MS, [1000, 2000, 4000]);
  assert.equal(MAX_ALERT_QUEUE, 1000);
  const alerter = new Alerter({ targets: [], log: capture().log });
  assert.equal(alerter.timeoutMs, 5000);
  assert.deepEqual(alerter.retryDelaysMs, [1000, 2000, 4000]);
  assert.equal(alerter.maxQueue, 1000);
  alerter.stop();
});
