// The poller: always on, streams or not; each check on its own schedule, never overlapping
// itself; one snapshot per interval however many streams; states with flap suppression,
// the overall rule, transitions as `change` events, logs and metrics.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type CheckState, nextState, overallStatus } from '../status.ts';
import {
  metricValue,
  openStream,
  request,
  type SseClient,
  sleep,
  startInProcess,
  startTarget,
  type Target,
  waitFor,
} from './helpers.ts';

// A target that counts hits by path and answers each path with a code and delay the test sets.
let target: Target;
let base = '';

before(async () => {
  target = await startTarget();
  base = target.url;
});
after(() => target?.close());

test('checks run and snapshots come with no stream open; 50 streams cost one check per interval', async () => {
  const INTERVAL_MS = 300;
  const service = await startInProcess({
    STATUS_INTERVAL_MS: String(INTERVAL_MS),
    CHECKS: `app=${base}/fifty`,
    HEARTBEAT_MS: '0',
  });
  try {
    await sleep(3 * INTERVAL_MS);
    assert.ok(target.hits('/fifty') >= 2, `checks with nobody watching: ${target.hits('/fifty')}`);
    assert.ok(service.poller.rounds >= 2);
    const clients: SseClient[] = [];
    for (let i = 0; i < 50; i++) clients.push(await openStream(`${service.url}/events`));
    const startHits = target.hits('/fifty');
    const startRounds = service.poller.rounds;
    await sleep(6 * INTERVAL_MS);
    const rounds = service.poller.rounds - startRounds;
    const checks = target.hits('/fifty') - startHits;
    assert.ok(
      Math.abs(checks - rounds) <= 1,
      `checks ${checks}, snapshots ${rounds}: one check per interval, not per stream`,
    );
    assert.ok(rounds >= 3 && rounds <= 8, `snapshots in 6 intervals: ${rounds}`);
    const last = clients[0].events.at(-1)!;
    await Promise.all(clients.map((c) => c.waitFor((e) => e.id === last.id, 1, 5000)));
    for (const c of clients) assert.equal(c.events.find((e) => e.id === last.id)!.data, last.data);
    assert.equal(JSON.parse(last.data!).checks[0].detail, 'HTTP 200');
    for (const c of clients) c.close();
  } finally {
    await service.close();
  }
});

test('a slow check never sets the pace of the others, and never overlaps itself', async () => {
  target.answers.set('/slow', { code: 200, delayMs: 600 });
  target.maxInFlight = 0;
  const service = await startInProcess({
    STATUS_INTERVAL_MS: '100',
    CHECK_TIMEOUT_MS: '5000',
    CHECKS: `slow=${base}/slow,fast=${base}/fast`,
    HEARTBEAT_MS: '0',
  });
  try {
    await sleep(1500);
    assert.ok(target.hits('/fast') >= 8, `fast check runs: ${target.hits('/fast')}`);
    assert.ok(target.hits('/slow') <= 3, `slow check runs: ${target.hits('/slow')}`);
    assert.ok(service.poller.rounds >= 8, `snapshots: ${service.poller.rounds}`);
    // /status answers at once from the latest snapshot, not after the slow check.
    const started = Date.now();
    await request(`${service.url}/status`);
    assert.ok(Date.now() - started < 400, `/status took ${Date.now() - started} ms`);
  } finally {
    target.answers.delete('/slow');
    await service.close();
  }
  assert.ok(target.maxInFlight <= 2, `at most one run per check at a time (${target.maxInFlight} in flight)`);
});

test('checks that start together run spread over their interval, each in its own slot', async () => {
  const N = 20;
  const INTERVAL_MS = 1000;
  const checks = Array.from({ length: N }, (_, i) => `s${i}=${base}/spread${i}`).join(',');
  const service = await startInProcess({ STATUS_INTERVAL_MS: String(INTERVAL_MS), CHECKS: checks, HEARTBEAT_MS: '0' });
  let first: Awaited<ReturnType<typeof service.poller.snapshot>>;
  try {
    first = await service.poller.snapshot();
    await sleep(3.5 * INTERVAL_MS);
  } finally {
    await service.close();
  }
  const checked = JSON.parse(first.json).checks as { state: string | null }[];
  assert.equal(checked.filter((c) => c.state === 'up').length, N, 'the first snapshot has every check');
  const runs = target.served.filter((s) => s.path.startsWith('/spread'));
  for (let i = 0; i < N; i++) {
    const n = runs.filter((s) => s.path === `/spread${i}`).length;
    assert.ok(n >= 3 && n <= 5, `check s${i} ran ${n} times in 3.5 intervals`);
  }
  // In step, all 20 would land in the same few ms of every interval; spread in steps of 250 ms, 5.
  const times = runs.map((s) => s.atMs).sort((a, b) => a - b);
  const steady = times.filter((t) => t >= times[0] + 1.5 * INTERVAL_MS);
  let most = 0;
  for (let a = 0, b = 0; b < steady.length; b++) {
    while (steady[b] - steady[a] > 100) a++;
    most = Math.max(most, b - a + 1);
  }
  assert.ok(most <= 8, `${most} of ${steady.length} runs within 100 ms`);
});

test('/status waits for the first snapshot, then answers the latest without running a check', async () => {
  target.answers.set('/first', { code: 200, delayMs: 300 });
  const service = await startInProcess({ STATUS_INTERVAL_MS: '60000', CHECKS: `app=${base}/first` });
  try {
    const replies = await Promise.all(Array.from({ length: 5 }, () => request(`${service.url}/status`)));
    assert.equal(new Set(replies.map((r) => r.body)).size, 1);
    assert.equal(JSON.parse(replies[0].body).checks[0].detail, 'HTTP 200');
    for (const r of replies) assert.equal(r.headers['cache-control'], 'no-store');
    await request(`${service.url}/status`);
    assert.equal(target.hits('/first'), 1);
    const client = await openStream(`${service.url}/events`);
    await client.waitForEvents(1, 1000);
    client.close();
    assert.equal(service.poller.rounds, 1);
  } finally {
    target.answers.delete('/first');
    await service.close();
  }
});

test('states, reasons and transitions: down, recovered, change events and log lines', async () => {
  target.answers.set('/flip', { code: 503, delayMs: 0 });
  const service = await startInProcess({
    STATUS_INTERVAL_MS: '100',
    CHECKS: `web=${base}/flip`,
    HEARTBEAT_MS: '0',
    LOG_LEVEL: 'debug',
  });
  const client = await openStream(`${service.url}/events`);
  try {
    await client.waitFor((b) => b.event === 'change', 2, 5000, 'change events (web down, overall down)');
    const [web, overall] = client.blocks.filter((b) => b.event === 'change').map((b) => JSON.parse(b.data!));
    assert.deepEqual(
      { ...web, time: undefined },
      { time: undefined, check: 'web', from: null, to: 'down', reason: 'HTTP 503, expected 200-399' },
    );
    assert.equal(overall.check, null);
    assert.equal(overall.to, 'down');
    const down = JSON.parse((await request(`${service.url}/status`)).body);
    assert.equal(down.status, 'down');
    assert.equal(down.checks[0].state, 'down');
    assert.equal(down.checks[0].ok, false);
    assert.equal(down.checks[0].reason, 'HTTP 503, expected 200-399');
    assert.equal(down.checks[0].since, web.time);
    await sleep(350);
    // A check that stays down logs at debug, once per run, and warns once.
    assert.equal(service.logs.filter((l) => l.msg === 'check down').length, 1);
    assert.ok(service.logs.filter((l) => l.msg === 'check still failing' && l.level === 20).length >= 2);
    target.answers.set('/flip', { code: 200, delayMs: 0 });
    await client.waitFor((b) => b.event === 'change' && JSON.parse(b.data!).to === 'up', 2, 5000, 'recovery changes');
    const recovered = service.logs.find((l) => l.msg === 'check recovered');
    assert.equal(recovered?.level, 30);
    assert.equal(recovered?.check, 'web');
    const metrics = (await request(`${service.url}/metrics`)).body;
    assert.equal(metricValue(metrics, 'status_check_state{check="web",state="up"}'), 1);
    assert.equal(metricValue(metrics, 'status_check_state{check="web",state="down"}'), 0);
    assert.ok(metricValue(metrics, 'status_last_snapshot_timestamp_seconds') > Date.now() / 1000 - 5);
    // Change events share the id sequence of snapshots, so a resume replays them.
    const ids = client.blocks.filter((b) => b.id !== undefined).map((b) => Number(b.id!.split('-')[1]));
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
    );
  } finally {
    client.close();
    target.answers.delete('/flip');
    await service.close();
  }
});

test('a healthy start records no transition', async () => {
  const service = await startInProcess({ STATUS_INTERVAL_MS: '100', CHECKS: `ok=${base}/healthy`, HEARTBEAT_MS: '0' });
  const client = await openStream(`${service.url}/events`);
  try {
    await client.waitForEvents(3, 5000);
    assert.equal(client.blocks.filter((b) => b.event === 'change').length, 0);
  } finally {
    client.close();
    await service.close();
  }
});

test('flap suppression: the state changes only after enough outcomes in a row', () => {
  const def = { failuresToDown: 3, successesToUp: 2 };
  let state: CheckState | null = null;
  let streak = 0;
  const feed = (outcome: CheckState): CheckState => {
    streak = outcome === state ? 0 : streak + 1;
    const next = nextState(state, outcome, streak, def);
    if (next !== state) streak = 0;
    state = next;
    return next;
  };
  assert.equal(feed('up'), 'up', 'the first outcome sets the state');
  assert.equal(feed('down'), 'up');
  assert.equal(feed('down'), 'up');
  assert.equal(feed('up'), 'up', 'a success breaks the run');
  assert.equal(feed('down'), 'up');
  assert.equal(feed('down'), 'up');
  assert.equal(feed('down'), 'down', 'three failures in a row');
  assert.equal(feed('up'), 'down');
  assert.equal(feed('degraded'), 'degraded', 'two non-down outcomes in a row leave down');
  assert.equal(feed('up'), 'up', 'between up and degraded the latest decides');
});

test('the overall rule: critical checks, every check down, degraded otherwise', () => {
  assert.equal(overallStatus([]), 'up');
  assert.equal(overallStatus([{ state: 'up' }, { state: 'up' }]), 'up');
  assert.equal(overallStatus([{ state: 'up' }, { state: 'degraded' }]), 'degraded');
  assert.equal(overallStatus([{ state: 'up' }, { state: 'down' }]), 'degraded');
  assert.equal(overallStatus([{ state: 'up' }, { state: 'down', critical: true }]), 'down');
  assert.equal(overallStatus([{ state: 'down' }, { state: 'down' }]), 'down');
  assert.equal(overallStatus([{ state: 'degraded', critical: true }, { state: 'up' }]), 'degraded');
});

test('failuresToDown from the environment default holds one lost answer back', async () => {
  // CHECKS defines every option at its default (1/1): one failure is enough. The file's
  // options are tested with CONFIG_FILE (tests/config-file.test.ts).
  target.answers.set('/once', { code: 500, delayMs: 0 });
  const service = await startInProcess({ STATUS_INTERVAL_MS: '100', CHECKS: `once=${base}/once` });
  try {
    await waitFor(
      async () => JSON.parse((await request(`${service.url}/status`)).body).checks[0].state === 'down',
      3000,
      'down',
    );
  } finally {
    target.answers.delete('/once');
    await service.close();
  }
});
