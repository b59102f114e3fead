// STATE_DIR end to end (docs/history.md): history, transitions, pushes and the announcement
// survive a SIGTERM restart; a kill -9 keeps what was saved before it; a corrupt file is set
// aside, never lost, and the service starts without it; a STATE_DIR that cannot be used is exit 2.

import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  type Reply,
  request,
  runToExit,
  startInProcess,
  startService,
  startTarget,
  type Target,
  tempDir,
  waitFor,
} from './helpers.ts';

// A target whose answer the test flips between 200 and 503.
let code = 200;
let target: Target;
let base = '';

before(async () => {
  target = await startTarget(() => ({ code }));
  base = target.url;
});
after(() => target?.close());

const PUBLISH_TOKEN = 'persist-publish-token';

/** A request with the publish token and a JSON body. */
function send(url: string, method: string, body?: unknown): Promise<Reply> {
  const headers = { authorization: `Bearer ${PUBLISH_TOKEN}`, 'content-type': 'application/json' };
  return request(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

interface Transition {
  readonly time: string;
  readonly check: string | null;
  readonly from: string | null;
  readonly to: string;
}

interface Remembered {
  readonly up: number;
  readonly down: number;
  readonly transitions: Transition[];
}

/** What GET /history remembers of the last hour for `check`, and every transition (the overall ones too). */
async function remembered(url: string, check = 'web'): Promise<Remembered> {
  const reply = await request(`${url}/history?range=1h&buckets=60`);
  assert.equal(reply.status, 200, reply.body);
  const body = JSON.parse(reply.body) as {
    checks: Array<{ name: string; buckets: Array<{ up: number; down: number }> }>;
    transitions: Transition[];
  };
  const buckets = body.checks.find((c) => c.name === check)?.buckets ?? [];
  return {
    up: buckets.reduce((n, b) => n + b.up, 0),
    down: buckets.reduce((n, b) => n + b.down, 0),
    transitions: body.transitions,
  };
}

function env(dir: string, configFile = ''): Record<string, string> {
  return {
    STATE_DIR: dir,
    CHECKS: `web=${base}/`,
    STATUS_INTERVAL_MS: '100',
    HEARTBEAT_MS: '0',
    PUBLISH_TOKEN,
    CONFIG_FILE: configFile,
  };
}

function asideFiles(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.includes('.corrupt-'));
}

test('history, transitions, pushes, announcement survive SIGTERM; a kill -9 keeps what was saved', async () => {
  const root = tempDir('state');
  const dir = join(root, 'state', 'nested'); // created as mkdir -p
  const configFile = join(root, 'config.json');
  writeFileSync(configFile, JSON.stringify({ checks: [{ name: 'cron', url: 'push://', withinMs: 600_000 }] }));
  code = 200;
  const first = await startService(env(dir, configFile));
  let upBefore: number;
  let transitionsBefore: Transition[];
  let downBefore: number;
  try {
    await waitFor(async () => (await remembered(first.url)).up >= 5, 15_000, 'five healthy runs');
    code = 503;
    await waitFor(
      async () => (await remembered(first.url)).transitions.some((t) => t.check === 'web'),
      15_000,
      'web down',
    );
    assert.equal((await send(`${first.url}/push/cron`, 'POST', { status: 'down', msg: 'backup failed' })).status, 204);
    const put = await send(`${first.url}/announcement`, 'PUT', { text: 'Database upgrade tonight', level: 'warning' });
    assert.equal(put.status, 200, put.body);
    ({ up: upBefore, transitions: transitionsBefore, down: downBefore } = await remembered(first.url));
  } finally {
    assert.equal(await first.stop('SIGTERM'), 0);
  }
  assert.deepEqual(
    transitionsBefore.map(({ check, from, to }) => ({ check, from, to })),
    [
      { check: 'web', from: 'up', to: 'down' },
      { check: null, from: 'up', to: 'degraded' },
      { check: 'cron', from: 'up', to: 'down' },
      { check: null, from: 'degraded', to: 'down' },
    ],
  );
  for (const file of ['history.json', 'pushes.json', 'announcement.json']) {
    assert.doesNotThrow(() => JSON.parse(readFileSync(join(dir, file), 'utf8')), file);
  }
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
    'no temporary file left',
  );

  const second = await startService(env(dir, configFile));
  try {
    const now = await remembered(second.url);
    // Every healthy run was before the restart: the count is exactly what was saved.
    assert.equal(now.up, upBefore);
    assert.ok(now.down >= downBefore, `down runs ${now.down} >= ${downBefore}`);
    assert.deepEqual(now.transitions.slice(0, transitionsBefore.length), transitionsBefore);
    const status = JSON.parse((await request(`${second.url}/status`)).body) as {
      announcement: { text: string; level: string } | null;
      checks: Array<{ name: string; state: string; reason: string | null; uptime: { '24h': number | null } }>;
    };
    // Snapshots' uptime counts the runs from before the restart.
    const uptime = status.checks.find((c) => c.name === 'web')?.uptime['24h'] ?? 0;
    assert.ok(uptime > 0 && uptime < 100, `web's 24h uptime ${uptime}`);
    assert.equal(status.announcement?.text, 'Database upgrade tonight');
    assert.equal(status.announcement?.level, 'warning');
    const cron = status.checks.find((c) => c.name === 'cron');
    assert.deepEqual({ state: cron?.state, reason: cron?.reason }, { state: 'down', reason: 'backup failed' });
    // More runs, then a kill -9: nothing after the last save is promised, but nothing saved is lost.
    await waitFor(async () => (await remembered(second.url)).down >= downBefore + 5, 15_000, 'five more runs');
  } finally {
    assert.equal(await second.stop('SIGKILL'), null);
  }

  const third = await startService(env(dir, configFile));
  try {
    const now = await remembered(third.url);
    assert.equal(now.up, upBefore);
    assert.ok(now.down >= downBefore);
    assert.deepEqual(now.transitions.slice(0, transitionsBefore.length), transitionsBefore);
    assert.deepEqual(asideFiles(dir), [], 'nothing was corrupt');
    assert.ok(!third.logs.some((l) => JSON.parse(l).level >= 50), third.logs.join('\n'));
  } finally {
    assert.equal(await third.stop('SIGTERM'), 0);
  }
});

test('the first state after a restart is a transition only when it is not up', async () => {
  const dir = tempDir('state');
  code = 200;
  const healthy = await startInProcess(env(dir));
  await waitFor(async () => (await remembered(healthy.url)).up >= 2, 15_000, 'two healthy runs');
  await healthy.close();
  const again = await startInProcess(env(dir));
  try {
    await waitFor(async () => (await remembered(again.url)).up >= 4, 15_000, 'two more healthy runs');
    assert.deepEqual((await remembered(again.url)).transitions, [], 'a healthy restart records nothing');
  } finally {
    await again.close();
  }
});

test('the state is saved while the service runs, not only at shutdown', async () => {
  const dir = tempDir('state');
  code = 503;
  const service = await startInProcess(env(dir));
  try {
    // SAVE_INTERVAL_MS is a minute; the same timer, shortened, in this process.
    service.state.stopSaving();
    service.state.startSaving(200);
    const saved = (): Array<{ check: string | null }> => {
      try {
        return (JSON.parse(readFileSync(join(dir, 'history.json'), 'utf8')) as { transitions: [] }).transitions;
      } catch {
        return [];
      }
    };
    await waitFor(() => saved().some((t) => t.check === 'web'), 10_000, 'a saved transition of web');
    assert.deepEqual(asideFiles(dir), []);
  } finally {
    await service.close();
  }
});

test('a STATE_DIR removed while running: the shutdown save fails, is logged, and shutdown completes', async () => {
  const dir = tempDir('state');
  code = 200;
  const service = await startInProcess(env(dir));
  rmSync(dir, { recursive: true });
  await service.close();
  const failed = service.logs.find((l) => l.msg === 'saving the state failed');
  assert.equal(failed?.level, 50);
  assert.match(JSON.stringify(failed?.err), /STATE_DIR .* could not save/);
});

/** A STATE_DIR whose history.json holds `bytes`, beside a valid pushes.json. */
function stateWith(bytes: Buffer | string): string {
  const dir = tempDir('state');
  writeFileSync(join(dir, 'history.json'), bytes);
  writeFileSync(join(dir, 'pushes.json'), '{}');
  return dir;
}

async function savedHistory(): Promise<Buffer> {
  const dir = tempDir('state');
  code = 503;
  const service = await startInProcess(env(dir));
  await waitFor(async () => (await remembered(service.url)).transitions.length >= 2, 15_000, 'two transitions');
  await service.close();
  return readFileSync(join(dir, 'history.json'));
}

test('a truncated, garbage or malformed history.json is set aside and logged; the service starts empty', async () => {
  const saved = await savedHistory();
  assert.ok(saved.length > 100, `a saved history of ${saved.length} bytes`);
  const cases: Array<[string, Buffer | string, RegExp]> = [
    ['truncated', saved.subarray(0, Math.floor(saved.length / 2)), /is not valid JSON/],
    ['garbage', Buffer.from([0xff, 0xfe, 0x00, 0x9c, 0x42, 0x13, 0x37]), /is not UTF-8 text/],
    ['empty', '', /is not valid JSON/],
    [
      'another shape',
      '{"version":1,"transitions":"lots","checks":[]}',
      /is not a valid state file: history\.transitions/,
    ],
  ];
  code = 200;
  for (const [what, bytes, problem] of cases) {
    const dir = stateWith(bytes);
    const service = await startInProcess(env(dir));
    try {
      const errors = service.logs.filter((l) => l.level === 50);
      assert.equal(errors.length, 1, `${what}: ${JSON.stringify(service.logs)}`);
      assert.match(String(errors[0].msg), problem, what);
      assert.equal(errors[0].file, 'history.json');
      const aside = asideFiles(dir);
      assert.equal(aside.length, 1, what);
      assert.equal(errors[0].renamedTo, aside[0]);
      assert.deepEqual(readFileSync(join(dir, aside[0])), Buffer.from(bytes), `${what}: kept byte for byte`);
      assert.deepEqual((await remembered(service.url)).transitions, [], `${what}: starts empty`);
      assert.equal(existsSync(join(dir, 'pushes.json')), true, 'the other files are left alone');
    } finally {
      await service.close();
    }
    // The next save writes a new history.json beside the one set aside, never over it.
    assert.doesNotThrow(() => JSON.parse(readFileSync(join(dir, 'history.json'), 'utf8')));
    assert.deepEqual(readFileSync(join(dir, asideFiles(dir)[0])), Buffer.from(bytes));
  }
});

test('a corrupt pushes.json or announcement.json is set aside on its own; the history still loads', async () => {
  const saved = await savedHistory();
  const dir = stateWith(saved);
  writeFileSync(join(dir, 'pushes.json'), '{"cron": {"status": "sideways"}}');
  writeFileSync(join(dir, 'announcement.json'), '{"text": 1}');
  code = 200;
  const service = await startInProcess(env(dir));
  try {
    const errors = service.logs.filter((l) => l.level === 50).map((l) => l.file);
    assert.deepEqual(errors.sort(), ['announcement.json', 'pushes.json']);
    assert.deepEqual(
      asideFiles(dir)
        .map((f) => f.split('.corrupt-')[0])
        .sort(),
      ['announcement.json', 'pushes.json'],
    );
    assert.ok((await remembered(service.url)).transitions.length >= 2, 'the saved transitions are back');
  } finally {
    await service.close();
  }
});

test('a STATE_DIR that cannot be created stops start-up with exit 2 and a line naming STATE_DIR', async () => {
  const dir = tempDir('state');
  writeFileSync(join(dir, 'a-file'), 'x');
  const result = await runToExit({ STATE_DIR: join(dir, 'a-file', 'state') });
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    /^config: STATE_DIR ".*a-file\/state" cannot be used: could not create it: ENOTDIR[^\n]*\n$/,
  );
  assert.ok(!result.stdout.includes('"msg":"listening"'));
});

// Root writes through a directory's mode bits; sysfs refuses it a new file all the same.
const ROOT_USER = process.getuid?.() === 0;
const READ_ONLY_SKIP =
  ROOT_USER && !existsSync('/sys/kernel')
    ? 'running as root, and no /sys to stand for a read-only directory'
    : undefined;

test('a STATE_DIR that exists but cannot be written stops start-up with exit 2', { skip: READ_ONLY_SKIP }, async () => {
  const dir = ROOT_USER ? '/sys' : tempDir('state');
  if (!ROOT_USER) chmodSync(dir, 0o500);
  try {
    const result = await runToExit({ STATE_DIR: dir });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^config: STATE_DIR ".*" cannot be used: could not write a file in it: EACCES/);
    assert.equal(result.stderr.trimEnd().split('\n').length, 1);
  } finally {
    if (!ROOT_USER) chmodSync(dir, 0o700);
  }
});
