// CONFIG_FILE end to end (docs/checks.md): check options against local targets and the overall
// rule; reload when the file changes, on SIGHUP, and on a Kubernetes ConfigMap's symlink swap; a
// refused reload keeps the old configuration; --check-config and start-up errors exit 2.

import assert from 'node:assert/strict';
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  freePort,
  type InProcess,
  metricValue,
  openStream,
  request,
  runToExit,
  sleep,
  startInProcess,
  startService,
  startTarget,
  type Target,
  tempDir,
  waitFor,
} from './helpers.ts';

// A target that answers each path as the test sets (code, body, delay) and notes every answer.
let target: Target;
let base = '';

before(async () => {
  target = await startTarget();
  base = target.url;
});
after(() => target?.close());

let written = 0;
/** Replaces the file as editors and config tools do: a new file renamed over the old one. */
function writeConfig(path: string, document: unknown): void {
  const temp = `${path}.tmp-${++written}`;
  writeFileSync(temp, typeof document === 'string' ? document : JSON.stringify(document, null, 2));
  renameSync(temp, path);
}

interface CheckView {
  readonly name: string;
  readonly state: string;
  readonly reason: string | null;
  readonly since: string;
  readonly detail: string;
}
interface StatusView {
  readonly status: string;
  readonly checks: CheckView[];
}

async function status(url: string): Promise<StatusView> {
  const reply = await request(`${url}/status`);
  assert.equal(reply.status, 200);
  return JSON.parse(reply.body) as StatusView;
}

function check(view: StatusView, name: string): CheckView {
  const found = view.checks.find((c) => c.name === name);
  assert.ok(found, `check ${name} in ${JSON.stringify(view.checks.map((c) => c.name))}`);
  return found;
}

async function metrics(url: string): Promise<string> {
  return (await request(`${url}/metrics`)).body;
}

/** Runs of `name` in the last hour, per state, from GET /history. */
async function runs(url: string, name: string): Promise<{ up: number; degraded: number; down: number }> {
  const reply = await request(`${url}/history?range=1h&buckets=60&check=${encodeURIComponent(name)}`);
  assert.equal(reply.status, 200, reply.body);
  const total = { up: 0, degraded: 0, down: 0 };
  for (const b of (JSON.parse(reply.body) as { checks: Array<{ buckets: (typeof total)[] }> }).checks[0].buckets) {
    total.up += b.up;
    total.degraded += b.degraded;
    total.down += b.down;
  }
  return total;
}

async function startWithFile(
  document: unknown,
  env: Record<string, string> = {},
): Promise<{ service: InProcess; file: string }> {
  const file = join(tempDir('config'), 'config.json');
  writeConfig(file, document);
  const service = await startInProcess({ CONFIG_FILE: file, STATUS_INTERVAL_MS: '100', HEARTBEAT_MS: '0', ...env });
  return { service, file };
}

/** Waits until every check in /status has its first result. */
async function settled(url: string): Promise<StatusView> {
  let view: StatusView | null = null;
  await waitFor(
    async () => {
      view = await status(url);
      return view.checks.every((c) => c.detail !== 'pending');
    },
    15_000,
    'a result for every check',
  );
  return view!;
}

test('CONFIG_FILE options decide each state and reason: codes, body text, slow means degraded', async () => {
  target.answers.set('/created', { code: 201, body: 'made', delayMs: 0 });
  target.answers.set('/health', { code: 200, body: '{"status":"UP"}', delayMs: 0 });
  target.answers.set('/slow', { code: 200, body: 'late', delayMs: 400 });
  target.answers.set('/no-content', { code: 204, body: '', delayMs: 0 });
  const { service } = await startWithFile({
    checks: [
      { name: 'created', url: `${base}/created`, expect: { status: [201] } },
      { name: 'strict', url: `${base}/created`, expect: { status: [200, '202-204'] } },
      { name: 'no-content', url: `${base}/no-content`, expect: { status: ['204-204'] } },
      { name: 'body-ok', url: `${base}/health`, expect: { bodyContains: '"status":"UP"' } },
      { name: 'body-bad', url: `${base}/health`, expect: { bodyContains: 'READY' } },
      { name: 'slow', url: `${base}/slow`, degradedMs: 100, timeoutMs: 5000 },
      { name: 'quick', url: `${base}/health`, degradedMs: 4000, timeoutMs: 5000 },
    ],
  });
  try {
    const view = await settled(service.url);
    assert.equal(check(view, 'created').state, 'up');
    assert.equal(check(view, 'created').detail, 'HTTP 201');
    assert.deepEqual(
      { state: check(view, 'strict').state, reason: check(view, 'strict').reason },
      { state: 'down', reason: 'HTTP 201, expected 200, 202-204' },
    );
    assert.equal(check(view, 'no-content').state, 'up');
    assert.equal(check(view, 'body-ok').state, 'up');
    assert.equal(check(view, 'body-ok').reason, null);
    assert.deepEqual(
      { state: check(view, 'body-bad').state, reason: check(view, 'body-bad').reason },
      { state: 'down', reason: 'body does not contain "READY"' },
    );
    assert.equal(check(view, 'slow').state, 'degraded');
    assert.match(check(view, 'slow').reason ?? '', /^slow: \d+ ms > 100 ms$/);
    assert.equal(check(view, 'quick').state, 'up');
    // Two checks are down but neither is critical, and not every check is down.
    assert.equal(view.status, 'degraded');
  } finally {
    await service.close();
  }
});

test('a critical check that is down makes the overall status down; the same check not critical, degraded', async () => {
  const closed = await freePort();
  const document = (critical: boolean): unknown => ({
    checks: [
      { name: 'db', url: `tcp://127.0.0.1:${closed}`, critical },
      { name: 'web', url: `${base}/fine` },
      { name: 'api', url: `${base}/fine`, critical: true },
    ],
  });
  for (const [critical, overall] of [
    [true, 'down'],
    [false, 'degraded'],
  ] as const) {
    const { service } = await startWithFile(document(critical));
    try {
      const view = await settled(service.url);
      assert.equal(check(view, 'db').state, 'down');
      assert.equal(check(view, 'db').reason, 'connection refused');
      assert.equal(check(view, 'web').state, 'up');
      assert.equal(view.status, overall, `critical: ${critical}`);
    } finally {
      await service.close();
    }
  }
});

test('flap suppression: failuresToDown and successesToUp hold the state; detail shows the latest', async () => {
  target.answers.set('/flaky', { code: 200, body: 'ok', delayMs: 0 });
  const { service } = await startWithFile({
    checks: [{ name: 'flaky', url: `${base}/flaky`, intervalMs: 250, failuresToDown: 3, successesToUp: 2 }],
  });
  const client = await openStream(`${service.url}/events`);
  try {
    const snapshots = (): CheckView[] =>
      client.events.filter((e) => e.event === undefined).map((e) => (JSON.parse(e.data!) as StatusView).checks[0]);
    const changed = async (to: string): Promise<{ time: string }> => {
      const [found] = await client.waitFor(
        (b) => b.event === 'change' && JSON.parse(b.data!).check === 'flaky' && JSON.parse(b.data!).to === to,
        1,
        15_000,
        `flaky ${to}`,
      );
      return JSON.parse(found.data!) as { time: string };
    };
    await waitFor(() => snapshots().some((c) => c.state === 'up' && c.detail === 'HTTP 200'), 10_000, 'flaky up');

    target.answers.set('/flaky', { code: 503, body: 'no', delayMs: 0 });
    const down = Date.parse((await changed('down')).time);
    const failuresBefore = target.served.filter((s) => s.path === '/flaky' && s.code === 503 && s.atMs <= down).length;
    assert.ok(failuresBefore >= 3, `down after ${failuresBefore} failures, expected 3`);
    assert.ok(
      snapshots().some((c) => c.state === 'up' && c.detail === 'HTTP 503'),
      'held up while the latest said 503',
    );

    const switchedAt = Date.now();
    target.answers.set('/flaky', { code: 200, body: 'ok', delayMs: 0 });
    const up = Date.parse((await changed('up')).time);
    const successesBefore = target.served.filter(
      (s) => s.path === '/flaky' && s.code === 200 && s.atMs >= switchedAt && s.atMs <= up,
    ).length;
    assert.ok(successesBefore >= 2, `up after ${successesBefore} successes, expected 2`);
    assert.ok(
      snapshots().some((c) => c.state === 'down' && c.detail === 'HTTP 200'),
      'held down while the latest said 200',
    );
  } finally {
    client.close();
    target.answers.delete('/flaky');
    await service.close();
  }
});

test('intervalMs: each check runs on its own schedule', async () => {
  const { service } = await startWithFile({
    checks: [
      { name: 'often', url: `${base}/often`, intervalMs: 100 },
      { name: 'seldom', url: `${base}/seldom`, intervalMs: 1000 },
    ],
  });
  try {
    const count = (path: string): number => target.served.filter((s) => s.path === path).length;
    await waitFor(() => count('/seldom') >= 3, 15_000, 'three runs of the seldom check');
    assert.ok(count('/often') >= 3 * count('/seldom'), `often ${count('/often')}, seldom ${count('/seldom')}`);
  } finally {
    await service.close();
  }
});

test('a rewritten file is reloaded: new check in, removed check out, a survivor keeps since and history', async () => {
  const { service, file } = await startWithFile({
    checks: [
      { name: 'keep', url: `${base}/keep` },
      { name: 'gone', url: `${base}/gone` },
    ],
  });
  try {
    await settled(service.url);
    await waitFor(async () => (await runs(service.url, 'keep')).up >= 3, 10_000, 'three runs of keep');
    const before = await status(service.url);
    const keptRuns = await runs(service.url, 'keep');

    writeConfig(file, {
      checks: [
        { name: 'keep', url: `${base}/keep` },
        { name: 'fresh', url: `${base}/fresh` },
      ],
    });
    await waitFor(
      async () => {
        const names = (await status(service.url)).checks.map((c) => c.name);
        return names.includes('fresh') && !names.includes('gone');
      },
      15_000,
      'the new configuration in /status',
    );

    const now = await status(service.url);
    assert.deepEqual(
      now.checks.map((c) => c.name),
      ['keep', 'fresh'],
    );
    assert.equal(check(now, 'keep').since, check(before, 'keep').since);
    const keepNow = await runs(service.url, 'keep');
    assert.ok(keepNow.up >= keptRuns.up, `keep's runs: ${keepNow.up} after, ${keptRuns.up} before`);
    assert.equal((await request(`${service.url}/history?check=gone`)).status, 404);
    await waitFor(async () => (await metrics(service.url)).includes('check="fresh"'), 10_000, 'fresh in /metrics');
    const text = await metrics(service.url);
    assert.ok(!text.includes('check="gone"'), 'gone is not in /metrics');
    assert.equal(metricValue(text, 'status_config_reloads_total{result="ok"}'), 1);
    assert.equal(metricValue(text, 'status_config_reloads_total{result="error"}'), 0);
    assert.equal(service.logs.filter((l) => l.msg === 'config reloaded').length, 1);
  } finally {
    await service.close();
  }
});

test("a reload that shortens a check's interval applies it from the latest run, not after the old one", async () => {
  const { service, file } = await startWithFile({
    checks: [{ name: 'hourly', url: `${base}/hourly`, intervalMs: 3_600_000 }],
  });
  const count = (): number => target.served.filter((s) => s.path === '/hourly').length;
  try {
    await settled(service.url);
    const before = count();
    writeConfig(file, { checks: [{ name: 'hourly', url: `${base}/hourly`, intervalMs: 200 }] });
    await waitFor(() => count() >= before + 3, 15_000, 'three runs at the new interval');
  } finally {
    await service.close();
  }
});

test('a reload removing the only failing check brings the overall up; a later failure is a transition', async () => {
  target.answers.set('/broken', { code: 503, body: 'no', delayMs: 0 });
  target.answers.set('/later', { code: 200, body: 'ok', delayMs: 0 });
  const { service, file } = await startWithFile({
    checks: [
      { name: 'later', url: `${base}/later` },
      { name: 'broken', url: `${base}/broken` },
    ],
  });
  const overall = async (): Promise<Array<{ from: string | null; to: string }>> => {
    const body = JSON.parse((await request(`${service.url}/history?range=1h`)).body) as {
      transitions: Array<{ check: string | null; from: string | null; to: string }>;
    };
    return body.transitions.filter((t) => t.check === null).map(({ from, to }) => ({ from, to }));
  };
  try {
    await waitFor(async () => (await status(service.url)).status === 'degraded', 10_000, 'degraded');
    writeConfig(file, { checks: [{ name: 'later', url: `${base}/later` }] });
    await waitFor(async () => (await status(service.url)).status === 'up', 15_000, 'up after the reload');
    await waitFor(async () => (await overall()).at(-1)?.to === 'up', 5000, 'an overall transition to up');
    target.answers.set('/later', { code: 500, body: 'no', delayMs: 0 });
    await waitFor(async () => (await overall()).at(-1)?.to === 'down', 10_000, 'an overall transition to down');
    assert.deepEqual(await overall(), [
      { from: null, to: 'degraded' },
      { from: 'degraded', to: 'up' },
      { from: 'up', to: 'down' },
    ]);
  } finally {
    target.answers.delete('/broken');
    target.answers.delete('/later');
    await service.close();
  }
});

test('a broken rewrite keeps the old configuration, logs one error line per problem and counts it', async () => {
  const { service, file } = await startWithFile({ checks: [{ name: 'a', url: `${base}/a` }] });
  const errors = (): Array<Record<string, unknown>> => service.logs.filter((l) => l.level === 50);
  const errorCount = async (): Promise<number> =>
    metricValue(await metrics(service.url), 'status_config_reloads_total{result="error"}');
  try {
    await settled(service.url);
    writeConfig(file, '{"checks": [');
    await waitFor(() => errors().length === 1, 10_000, 'the error line of bad JSON');
    assert.match(String(errors()[0].problem), /^config: CONFIG_FILE .*config\.json: is not valid JSON/);
    assert.equal(await errorCount(), 1);

    writeConfig(file, { checks: [{ name: 'a', url: `${base}/a`, timeoutMs: 'soon', colour: 'red' }] });
    await waitFor(() => errors().length === 3, 10_000, 'an error line per problem');
    const problems = errors()
      .slice(1)
      .map((l) => String(l.problem));
    assert.ok(
      problems.some((p) => /checks\[0\] "a": timeoutMs: "soon"/.test(p)),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => /checks\[0\] "a": colour: unknown field/.test(p)),
      problems.join('\n'),
    );
    assert.equal(await errorCount(), 2);

    // V8 quotes the text around a syntax error: here, the tail of a webhook URL.
    writeConfig(file, `{"alerts":[{"url":"https://hooks.example/T0/XyZzYq","on":down}]}`);
    await waitFor(() => errors().length === 4, 10_000, 'the error line of the second bad JSON');
    assert.ok(!JSON.stringify(errors()[3]).includes('zYq'), `URL shown: ${JSON.stringify(errors()[3])}`);
    assert.equal(await errorCount(), 3);

    await sleep(500);
    const view = await status(service.url);
    assert.deepEqual(
      view.checks.map((c) => c.name),
      ['a'],
    );
    assert.equal(check(view, 'a').state, 'up');
    assert.equal(errors().length, 4, 'no more error lines');
    assert.ok(errors().every((l) => l.msg === 'config reload refused: the old configuration stays'));

    writeConfig(file, {
      checks: [
        { name: 'a', url: `${base}/a` },
        { name: 'b', url: `${base}/b` },
      ],
    });
    await waitFor(async () => (await status(service.url)).checks.length === 2, 10_000, 'the fixed file applied');
    assert.equal(metricValue(await metrics(service.url), 'status_config_reloads_total{result="ok"}'), 1);
  } finally {
    await service.close();
  }
});

test('SIGHUP reloads CONFIG_FILE, also a link into another directory, which the watch cannot see', async () => {
  const real = join(tempDir('config'), 'real.json');
  const link = join(tempDir('config'), 'config.json');
  writeFileSync(real, JSON.stringify({ checks: [{ name: 'one', url: `${base}/one` }] }));
  symlinkSync(real, link);
  const service = await startService({ CONFIG_FILE: link, STATUS_INTERVAL_MS: '200', HEARTBEAT_MS: '0' });
  try {
    await settled(service.url);
    // Written in place, behind the link: no event in the link's directory.
    writeFileSync(real, JSON.stringify({ checks: [{ name: 'two', url: `${base}/two` }] }));
    await sleep(1000);
    assert.deepEqual(
      (await status(service.url)).checks.map((c) => c.name),
      ['one'],
    );
    process.kill(service.pid, 'SIGHUP');
    await waitFor(
      async () => (await status(service.url)).checks.some((c) => c.name === 'two'),
      15_000,
      'two after SIGHUP',
    );
    assert.deepEqual(
      (await status(service.url)).checks.map((c) => c.name),
      ['two'],
    );
    assert.ok(service.logs.some((l) => l.includes('"msg":"config reloaded"')));
    // SIGHUP is not a stop signal.
    assert.equal((await request(`${service.url}/healthz`)).status, 200);
  } finally {
    assert.equal(await service.stop(), 0);
  }
});

test('a ConfigMap-style symlink swap (..data to a new directory) is picked up', async () => {
  const dir = tempDir('config');
  const version = (name: string, checks: unknown[]): void => {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'config.json'), JSON.stringify({ checks }));
  };
  version('..v1', [{ name: 'v1', url: `${base}/v1` }]);
  symlinkSync('..v1', join(dir, '..data'));
  symlinkSync('..data/config.json', join(dir, 'config.json'));
  const service = await startInProcess({
    CONFIG_FILE: join(dir, 'config.json'),
    STATUS_INTERVAL_MS: '100',
    HEARTBEAT_MS: '0',
  });
  try {
    await settled(service.url);
    // What the kubelet does: a new directory, a new link beside ..data, renamed over it, the old directory removed.
    version('..v2', [{ name: 'v2', url: `${base}/v2` }]);
    symlinkSync('..v2', join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    rmSync(join(dir, '..v1'), { recursive: true });
    await waitFor(async () => (await status(service.url)).checks.some((c) => c.name === 'v2'), 15_000, 'v2 in /status');
    assert.deepEqual(
      (await status(service.url)).checks.map((c) => c.name),
      ['v2'],
    );
    assert.equal(service.logs.filter((l) => l.level === 50).length, 0, 'no error on the way');
  } finally {
    await service.close();
  }
});

test('--check-config prints "ok" and exits 0 for a good file', async () => {
  const file = join(tempDir('config'), 'config.json');
  writeConfig(file, {
    checks: [{ name: 'a', url: `${base}/a`, expect: { status: [200] } }],
    alerts: [{ url: `${base}/hook` }],
  });
  const result = await runToExit({ CONFIG_FILE: file, STATE_DIR: join(tempDir('config'), 'state') }, [
    '--check-config',
  ]);
  assert.deepEqual(result, { code: 0, stdout: 'ok\n', stderr: '' });
});

const BAD_DOCUMENT = {
  checks: [
    { name: 'web', url: 'http://127.0.0.1:1/', expect: { status: ['500-200'] } },
    { name: 'api', url: 'http://127.0.0.1:1/', withinMs: 1000 },
    { name: 'web', url: 'http://127.0.0.1:2/' },
    { name: 'mx', url: 'http://127.0.0.1:3/', degradedMs: 3000, timeoutMs: 2000 },
  ],
  alerts: [{ url: 'ftp://hooks.example/secret-path', on: ['sideways'] }],
  extra: true,
};
const BAD_LINES = [
  /checks\[0\] "web": expect\.status/,
  /checks\[1\] "api": withinMs/,
  /checks\[2\] "web": name: "web" is used twice/,
  /checks\[3\] "mx": degradedMs: 3000/,
  /alerts\[0\]\.url/,
  /alerts\[0\]\.on\[0\]/,
  /unknown field "extra"/,
];

function assertEveryProblem(stderr: string): void {
  const lines = stderr.trimEnd().split('\n');
  for (const pattern of BAD_LINES)
    assert.ok(
      lines.some((l) => pattern.test(l)),
      `${pattern} in:\n${stderr}`,
    );
  assert.equal(lines.length, BAD_LINES.length, stderr);
  assert.ok(!stderr.includes('secret-path'), 'the alert URL is shown as scheme://host only');
}

test('--check-config lists every problem of a bad file and exits 2', async () => {
  const file = join(tempDir('config'), 'config.json');
  writeConfig(file, BAD_DOCUMENT);
  const result = await runToExit({ CONFIG_FILE: file }, ['--check-config']);
  assert.equal(result.code, 2);
  assert.equal(result.stdout, '');
  assertEveryProblem(result.stderr);
});

test('--check-config refuses a STATE_DIR that cannot be created, beside the file problems', async () => {
  const dir = tempDir('config');
  writeFileSync(join(dir, 'a-file'), 'x');
  const good = join(dir, 'config.json');
  writeConfig(good, { checks: [] });
  const stateOnly = await runToExit({ CONFIG_FILE: good, STATE_DIR: join(dir, 'a-file', 'state') }, ['--check-config']);
  assert.equal(stateOnly.code, 2);
  assert.equal(stateOnly.stdout, '');
  assert.match(stateOnly.stderr, /^config: STATE_DIR ".*a-file\/state" cannot be used: could not create it: ENOTDIR/);
  assert.equal(stateOnly.stderr.trimEnd().split('\n').length, 1);

  const bad = join(dir, 'bad.json');
  writeConfig(bad, '{"checks": 1}');
  const both = await runToExit({ CONFIG_FILE: bad, STATE_DIR: join(dir, 'a-file', 'state') }, ['--check-config']);
  assert.equal(both.code, 2);
  const lines = both.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 2, both.stderr);
  assert.match(lines[0], /bad\.json: checks: 1 is not an array/);
  assert.match(lines[1], /STATE_DIR/);
});

test('a bad CONFIG_FILE at start-up exits 2 with every problem, before listening', async () => {
  const file = join(tempDir('config'), 'config.json');
  writeConfig(file, BAD_DOCUMENT);
  const result = await runToExit({ CONFIG_FILE: file });
  assert.equal(result.code, 2);
  assert.ok(!result.stdout.includes('"msg":"listening"'), result.stdout);
  assertEveryProblem(result.stderr);

  // A STATE_DIR that cannot be made is listed beside the file's problems, not after a second try.
  const dir = tempDir('config');
  writeFileSync(join(dir, 'a-file'), 'x');
  const missing = await runToExit({ CONFIG_FILE: join(dir, 'nowhere.json'), STATE_DIR: join(dir, 'a-file', 'state') });
  assert.equal(missing.code, 2);
  const lines = missing.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 2, missing.stderr);
  assert.match(lines[0], /^config: CONFIG_FILE .*nowhere\.json: cannot be read \(ENOENT\)$/);
  assert.match(lines[1], /^config: STATE_DIR ".*a-file\/state" cannot be used: could not create it: ENOTDIR/);
});
