// Push checks (a dead man's switch): the outcome rule with a fake clock, the push log and
// its saved form, and runCheck reading the log.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type PushCheck, PushLog, parseCheckDefinitions, pushOutcome, runCheck } from '../checks/index.ts';

const HOUR_MS = 3600 * 1000;
const START_MS = Date.UTC(2026, 10, 25, 0, 0, 0);

function pushCheck(withinMs: number): PushCheck {
  const { checks, problems } = parseCheckDefinitions(
    [{ name: 'nightly', url: 'push://', withinMs }],
    'test.json',
    { timeoutMs: 2000, intervalMs: 10_000 },
    new Set(),
  );
  assert.deepEqual(problems, []);
  return checks[0] as PushCheck;
}

const daily = pushCheck(25 * HOUR_MS);

test('before the first push a push check is up until withinMs after start-up, then down', () => {
  assert.deepEqual(pushOutcome(daily, undefined, START_MS, START_MS + HOUR_MS), {
    state: 'up',
    detail: 'no push yet',
    reason: null,
    latencyMs: 0,
  });
  assert.deepEqual(pushOutcome(daily, undefined, START_MS, START_MS + 26 * HOUR_MS), {
    state: 'down',
    detail: 'no push yet',
    reason: 'no push for 26h',
    latencyMs: 0,
  });
});

test('a push check is up while the last push said up and is younger than withinMs', () => {
  const last = { status: 'up' as const, msg: null, atMs: START_MS };
  assert.deepEqual(pushOutcome(daily, last, START_MS - 100 * HOUR_MS, START_MS + 24 * HOUR_MS), {
    state: 'up',
    detail: 'pushed up 24h ago',
    reason: null,
    latencyMs: 0,
  });
  assert.deepEqual(pushOutcome(daily, last, START_MS, START_MS + 25 * HOUR_MS), {
    state: 'down',
    detail: 'pushed up 25h ago',
    reason: 'no push for 25h',
    latencyMs: 0,
  });
});

test('a push that said down is down at once, its msg the reason', () => {
  assert.deepEqual(
    pushOutcome(daily, { status: 'down', msg: 'backup failed: disk full', atMs: START_MS }, START_MS, START_MS + 1000),
    { state: 'down', detail: 'pushed down 1s ago', reason: 'backup failed: disk full', latencyMs: 0 },
  );
  assert.equal(
    pushOutcome(daily, { status: 'down', msg: null, atMs: START_MS }, START_MS, START_MS).reason,
    'the last push said down',
  );
});

test('ages read in human units', () => {
  const age = (ms: number): string | null =>
    pushOutcome(pushCheck(1), { status: 'up', msg: null, atMs: 0 }, 0, ms).reason;
  assert.equal(age(500), 'no push for 500ms');
  assert.equal(age(45_000), 'no push for 45s');
  assert.equal(age(12 * 60_000), 'no push for 12m');
  assert.equal(age(26 * HOUR_MS), 'no push for 26h');
  assert.equal(age(72 * HOUR_MS), 'no push for 3d');
});

test('a clock that went back does not make a push look older', () => {
  assert.equal(
    pushOutcome(daily, { status: 'up', msg: null, atMs: START_MS }, START_MS, START_MS - HOUR_MS).state,
    'up',
  );
});

test('runCheck judges a push check by the log it is given and the current time', async () => {
  const pushes = new PushLog();
  const check = pushCheck(HOUR_MS);
  assert.equal((await runCheck(check, { pushes, startedAtMs: Date.now() })).state, 'up');
  assert.equal((await runCheck(check, { pushes, startedAtMs: Date.now() - 2 * HOUR_MS })).reason, 'no push for 2h');
  pushes.record('nightly', { status: 'up', msg: null }, Date.now() - 2 * HOUR_MS);
  assert.equal((await runCheck(check, { pushes, startedAtMs: Date.now() })).reason, 'no push for 2h');
  pushes.record('nightly', { status: 'up', msg: 'ok' }, Date.now());
  assert.equal((await runCheck(check, { pushes, startedAtMs: Date.now() })).state, 'up');
});

test('the push log keeps the last push per check and survives a round trip through JSON', () => {
  const log = new PushLog();
  log.record('a', { status: 'up', msg: null }, 1);
  log.record('a', { status: 'down', msg: 'x'.repeat(300) }, 2);
  log.record('b', { status: 'up', msg: 'fine' }, 3);
  assert.equal(log.size, 2);
  assert.deepEqual(log.last('a'), { status: 'down', msg: 'x'.repeat(200), atMs: 2 });
  const copy = PushLog.fromJSON(JSON.parse(JSON.stringify(log)));
  assert.deepEqual(copy.toJSON(), log.toJSON());
  assert.deepEqual(copy.last('b'), { status: 'up', msg: 'fine', atMs: 3 });
  copy.forget('b');
  assert.equal(copy.last('b'), undefined);
  assert.equal(copy.size, 1);
});

test('a bad saved push log is refused with the entry named', () => {
  for (const bad of [
    null,
    [],
    'x',
    { a: null },
    { a: { status: 'maybe', msg: null, atMs: 1 } },
    { a: { status: 'up', msg: 5, atMs: 1 } },
    { a: { status: 'up', msg: null, atMs: 'yesterday' } },
    { a: { status: 'up', msg: 'x'.repeat(201), atMs: 1 } },
  ]) {
    assert.throws(() => PushLog.fromJSON(bad), /^Error: push log: /, JSON.stringify(bad));
  }
  assert.throws(() => PushLog.fromJSON({ 'we"ird': { status: 'up' } }), /bad entry for "we\\"ird"/);
});
