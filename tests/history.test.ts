// History (docs/history.md): buckets, uptime, /history answers, transitions, and the state file's
// JSON, counted from known runs recorded at chosen times.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  HISTORY_VERSION,
  History,
  type HistoryAnswer,
  MAX_LATENCY_TENTHS,
  MAX_TRANSITIONS,
  parseHistoryQuery,
  RANGES,
  type RangeName,
  RECENT_RESULTS,
  TIERS,
} from '../history.ts';
import type { CheckState, Transition } from '../status.ts';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
// A whole hour, so minute and hour buckets start on it.
const T0 = Date.UTC(2024, 0, 10, 0, 0, 0);

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function totals(answer: HistoryAnswer, check = 0): { up: number; degraded: number; down: number } {
  const sum = { up: 0, degraded: 0, down: 0 };
  for (const b of answer.checks[check].buckets) {
    sum.up += b.up;
    sum.degraded += b.degraded;
    sum.down += b.down;
  }
  return sum;
}

function transition(atMs: number, check: string | null, to: CheckState, from: CheckState | null = 'up'): Transition {
  return { time: iso(atMs), check, from, to, reason: to === 'up' ? null : `went ${to}` };
}

function text(history: History): string {
  return [...history.jsonPieces()].join('');
}

type Run = readonly [check: string, state: CheckState, latencyMs: number | null, atMs: number];

/** A ring of a version 2 state file holding `runs`: `size` buckets of `bucketMs` ending with the newest run's. */
function legacyRing(runs: readonly Run[], bucketMs: number, size: number): Record<string, number | number[]> {
  const end = Math.floor(Math.max(...runs.map((r) => r[3])) / bucketMs);
  const column = (): number[] => Array(size).fill(0);
  const c = { up: column(), degraded: column(), down: column(), minTenths: column(), maxTenths: column() };
  const sumTenths = column();
  const noLatency = column();
  const measured = column();
  for (const [, state, latencyMs, atMs] of runs) {
    const k = Math.floor(atMs / bucketMs) - (end - size + 1);
    if (k < 0) continue;
    c[state][k]++;
    if (latencyMs === null) {
      noLatency[k]++;
      continue;
    }
    const tenths = Math.round(latencyMs * 10);
    c.minTenths[k] = measured[k] === 0 ? tenths : Math.min(c.minTenths[k], tenths);
    c.maxTenths[k] = measured[k] === 0 ? tenths : Math.max(c.maxTenths[k], tenths);
    sumTenths[k] += tenths;
    measured[k]++;
  }
  return { end, ...c, sumTenths, ...(noLatency.some((n) => n > 0) ? { noLatency } : {}) };
}

/** The version 2 state file of `runs` (24 h of minute buckets, 90 days of hour buckets) and `transitions`. */
function version2(runs: readonly Run[], transitions: readonly Transition[] = []): unknown {
  const names = [...new Set(runs.map((r) => r[0]))];
  return {
    version: 2,
    transitions,
    checks: names.map((name) => {
      const own = runs.filter((r) => r[0] === name);
      return {
        name,
        minutes: legacyRing(own, MINUTE, 1440),
        hours: legacyRing(own, HOUR, 2160),
        recent: own.slice(-RECENT_RESULTS).map(([, state, latencyMs, atMs]) => [atMs, state, latencyMs]),
      };
    }),
  };
}

/** A parsed state file of version 2 as version 1 wrote it: a `count` of runs with a latency per bucket. */
function asVersion1(file: unknown): unknown {
  const copy = structuredClone(file) as { version: number; checks: Array<Record<string, Record<string, number[]>>> };
  copy.version = 1;
  for (const check of copy.checks) {
    for (const ring of [check.minutes, check.hours]) {
      const { noLatency, ...rest } = ring;
      rest.count = ring.up.map((up, k) => up + ring.degraded[k] + ring.down[k] - (noLatency?.[k] ?? 0));
      check[ring === check.minutes ? 'minutes' : 'hours'] = rest;
    }
  }
  return copy;
}

test('counts runs per state and latency min/avg/max in the minute that holds them', () => {
  const history = new History();
  history.record('api', 'up', 10, T0 + 5_000);
  history.record('api', 'degraded', 30.4, T0 + 20_000);
  history.record('api', 'down', null, T0 + 59_999);
  history.record('api', 'up', 20, T0 + MINUTE);
  const answer = history.query({ range: '1h', buckets: 60, checks: ['api'] }, T0 + MINUTE + 30_000);
  const buckets = answer.checks[0].buckets;
  assert.equal(buckets.length, 60);
  assert.deepEqual(buckets[58], {
    start: iso(T0),
    up: 1,
    degraded: 1,
    down: 1,
    latencyMs: { min: 10, avg: 20.2, max: 30.4 },
  });
  assert.deepEqual(buckets[59], {
    start: iso(T0 + MINUTE),
    up: 1,
    degraded: 0,
    down: 0,
    latencyMs: { min: 20, avg: 20, max: 20 },
  });
  assert.deepEqual(buckets[0], {
    start: iso(T0 - 58 * MINUTE),
    up: 0,
    degraded: 0,
    down: 0,
    latencyMs: { min: null, avg: null, max: null },
  });
  assert.equal(answer.checks[0].uptime, 75);
});

test('answers every range with equal slices, oldest first, ending with the bucket that holds now', () => {
  const now = T0 + 10 * DAY + 5 * HOUR + 17 * MINUTE + 12_345;
  const cases: Array<[RangeName, number, number]> = [
    ['1h', 60, MINUTE],
    ['24h', 90, 5 * MINUTE],
    ['7d', 168, HOUR],
    ['30d', 30, HOUR],
    ['90d', 90, 4 * HOUR],
    ['24h', 500, 5 * MINUTE],
    ['90d', 1, 4 * HOUR],
  ];
  for (const [range, buckets, resolution] of cases) {
    const answer = new History().query({ range, buckets, checks: ['a', 'b'] }, now);
    const to = (Math.floor(now / resolution) + 1) * resolution;
    assert.equal(answer.range, range);
    assert.equal(answer.buckets, buckets);
    assert.equal(answer.to, iso(to), range);
    assert.equal(answer.from, iso(to - RANGES[range]), range);
    assert.deepEqual(
      answer.checks.map((c) => c.name),
      ['a', 'b'],
    );
    for (const check of answer.checks) {
      assert.equal(check.buckets.length, buckets);
      assert.equal(check.uptime, null);
      check.buckets.forEach((b, i) => {
        assert.equal(b.start, iso(to - RANGES[range] + (i * RANGES[range]) / buckets));
      });
    }
  }
});

test('fills each range from its ring: minutes (1h), 5 minutes (24h), hours (7d, 30d), 4 hours (90d)', () => {
  const history = new History();
  const now = T0 + 100 * DAY;
  // One down run 2 h ago, one up run 30 min ago, one degraded run 3 days ago, one up run 60 days ago.
  history.record('api', 'up', 5, now - 60 * DAY);
  history.record('api', 'degraded', 5, now - 3 * DAY);
  history.record('api', 'down', 5, now - 2 * HOUR);
  history.record('api', 'up', 5, now - 30 * MINUTE);
  const count = (range: RangeName): { up: number; degraded: number; down: number } =>
    totals(history.query({ range, buckets: 10, checks: ['api'] }, now));
  assert.deepEqual(count('1h'), { up: 1, degraded: 0, down: 0 });
  assert.deepEqual(count('24h'), { up: 1, degraded: 0, down: 1 });
  assert.deepEqual(count('7d'), { up: 1, degraded: 1, down: 1 });
  assert.deepEqual(count('30d'), { up: 1, degraded: 1, down: 1 });
  assert.deepEqual(count('90d'), { up: 2, degraded: 1, down: 1 });
  assert.equal(history.query({ range: '90d', buckets: 10, checks: ['api'] }, now).checks[0].uptime, 75);
});

test('counts each bucket once, in the slice its start falls in, when slices are finer than the data', () => {
  const history = new History();
  for (let m = 0; m < 60; m++) history.record('api', 'up', 1, T0 + m * MINUTE + 30_000);
  const answer = history.query({ range: '1h', buckets: 120, checks: ['api'] }, T0 + 59 * MINUTE);
  const counts = answer.checks[0].buckets.map((b) => b.up);
  assert.deepEqual(
    counts,
    Array.from({ length: 120 }, (_, i) => (i % 2 === 0 ? 1 : 0)),
  );
  assert.equal(answer.checks[0].buckets[1].latencyMs.avg, null);
});

test('spreads buckets over slices that do not divide them, and keeps every count', () => {
  const history = new History();
  for (let m = 0; m < 1440; m++) history.record('api', m % 10 === 0 ? 'down' : 'up', m % 100, T0 + m * MINUTE);
  const answer = history.query({ range: '24h', buckets: 7, checks: ['api'] }, T0 + 1439 * MINUTE);
  const sizes = answer.checks[0].buckets.map((b) => b.up + b.down);
  // Slice i holds the 5-minute buckets k with floor(k * 7 / 288) = i, 5 runs each.
  assert.deepEqual(sizes, [210, 205, 205, 205, 205, 205, 205]);
  assert.deepEqual(totals(answer), { up: 1296, degraded: 0, down: 144 });
  assert.equal(answer.checks[0].buckets[1].start, iso(T0 + Math.ceil(DAY / 7)));
  assert.equal(answer.checks[0].uptime, 90);
  // Minutes 0-209: latencies 0-99 twice and 0-9: (2 * 4950 + 45) / 210.
  assert.deepEqual(answer.checks[0].buckets[0].latencyMs, { min: 0, avg: 47.4, max: 99 });
});

test('uptime is the percent of runs not down over 24h, 7d and 30d, floored to two decimals', () => {
  const history = new History();
  const now = T0 + 40 * DAY;
  // 24h: 1 down in 10,000 runs; 7d: 2 in 10,001; 30d: 3 in 10,003. Degraded is not down.
  history.record('api', 'down', null, now - 20 * DAY);
  history.record('api', 'up', 1, now - 20 * DAY + MINUTE);
  history.record('api', 'down', null, now - 2 * DAY);
  for (let i = 0; i < 9999; i++) history.record('api', i === 0 ? 'down' : 'degraded', 1, now - 23 * HOUR + i);
  history.record('api', 'up', 1, now);
  assert.deepEqual(history.uptime('api', now), { '24h': 99.99, '7d': 99.98, '30d': 99.97 });
  // 9999 of 10000 not down is 99.99 exactly; 99.995 floors to 99.99, never rounds up to 100.
  const rounding = new History();
  for (let i = 0; i < 19_999; i++) rounding.record('b', 'up', null, T0 + i);
  rounding.record('b', 'down', null, T0 + 20_000);
  assert.equal(rounding.uptime('b', T0 + 20_000)['24h'], 99.99);
});

test('uptime is null for a check without runs in the window, and for an unknown check', () => {
  const history = new History();
  history.record('api', 'down', 1, T0);
  assert.deepEqual(history.uptime('nope', T0), { '24h': null, '7d': null, '30d': null });
  assert.deepEqual(history.uptime('api', T0), { '24h': 0, '7d': 0, '30d': 0 });
  assert.deepEqual(history.uptime('api', T0 + 31 * DAY), { '24h': null, '7d': null, '30d': null });
});

test('uptime windows start 24 h, 7 d and 30 d before the end of the bucket that holds now', () => {
  const history = new History();
  history.record('api', 'down', 1, T0);
  assert.equal(history.uptime('api', T0 + DAY - 1)['24h'], 0);
  assert.equal(history.uptime('api', T0 + DAY)['24h'], null);
  assert.equal(history.uptime('api', T0 + 7 * DAY - 1)['7d'], 0);
  assert.equal(history.uptime('api', T0 + 7 * DAY)['7d'], null);
  assert.equal(history.uptime('api', T0 + 30 * DAY - 1)['30d'], 0);
  assert.equal(history.uptime('api', T0 + 30 * DAY)['30d'], null);
});

test('uptime follows each new run, in the current bucket and in finished ones', () => {
  const history = new History();
  const now = T0 + 5 * DAY + 30 * MINUTE;
  history.record('api', 'up', 1, now - 2 * HOUR);
  assert.equal(history.uptime('api', now)['24h'], 100);
  history.record('api', 'down', 1, now - 2 * HOUR + 1); // the same, finished, bucket
  assert.deepEqual(history.uptime('api', now), { '24h': 50, '7d': 50, '30d': 50 });
  history.record('api', 'up', 1, now); // the current bucket
  history.record('api', 'up', 1, now + 1);
  assert.deepEqual(history.uptime('api', now), { '24h': 75, '7d': 75, '30d': 75 });
  assert.deepEqual(history.uptime('api', now + MINUTE), { '24h': 75, '7d': 75, '30d': 75 });
  history.record('api', 'down', 1, now + MINUTE);
  assert.deepEqual(history.uptime('api', now + MINUTE), { '24h': 60, '7d': 60, '30d': 60 });
  assert.deepEqual(history.uptime('api', now + HOUR), { '24h': 60, '7d': 60, '30d': 60 });
});

test('each ring rolls over after its span: 1 h, 24 h, 30 days, 90 days', () => {
  const ranges: RangeName[] = ['1h', '24h', '30d', '90d'];
  TIERS.forEach((tier, i) => {
    const history = new History();
    history.record('api', 'down', 7, T0);
    const lap = T0 + tier.ms * tier.size;
    // Its ring's slot for T0 is reused a lap later, and holds only the new run.
    history.record('api', 'degraded', 9, lap);
    const answer = history.query({ range: ranges[i], buckets: 1, checks: ['api'] }, lap);
    assert.deepEqual(totals(answer), { up: 0, degraded: 1, down: 0 }, tier.key);
    assert.deepEqual(answer.checks[0].buckets[0].latencyMs, { min: 9, avg: 9, max: 9 }, tier.key);
    // The coarser rings still hold the first run.
    const coarser = history.query({ range: '90d', buckets: 1, checks: ['api'] }, lap);
    assert.deepEqual(totals(coarser), { up: 0, degraded: 1, down: tier.key === 'fourHours' ? 0 : 1 }, tier.key);
  });
  // A gap longer than every ring empties them all.
  const history = new History();
  history.record('api', 'up', 3, T0);
  history.record('api', 'down', 3, T0 + 200 * DAY);
  for (const range of ranges) {
    const answer = history.query({ range, buckets: 90, checks: ['api'] }, T0 + 200 * DAY);
    assert.deepEqual(totals(answer), { up: 0, degraded: 0, down: 1 }, range);
  }
});

test('a run before the newest bucket (the clock stepped back) drops the buckets after it', () => {
  const history = new History();
  history.record('api', 'up', 1, T0);
  history.record('api', 'up', 1, T0 + 10 * MINUTE);
  history.record('api', 'down', 1, T0 + 3 * HOUR);
  history.record('api', 'degraded', 1, T0 + 5 * MINUTE);
  const answer = history.query({ range: '24h', buckets: 480, checks: ['api'] }, T0 + 3 * HOUR);
  assert.deepEqual(totals(answer), { up: 1, degraded: 1, down: 0 });
  assert.deepEqual(history.uptime('api', T0 + 5 * MINUTE), { '24h': 100, '7d': 100, '30d': 100 });
  history.record('api', 'down', 1, T0 - 100 * DAY);
  assert.deepEqual(history.uptime('api', T0), { '24h': null, '7d': null, '30d': null });
  assert.deepEqual(history.uptime('api', T0 - 100 * DAY), { '24h': 0, '7d': 0, '30d': 0 });
});

test('keeps the latest 60 results of each check, oldest first', () => {
  const history = new History();
  assert.deepEqual(history.recent('api'), []);
  history.record('api', 'down', null, T0);
  assert.deepEqual(history.recent('api'), [{ time: iso(T0), state: 'down', latencyMs: null }]);
  for (let i = 1; i <= 100; i++) history.record('api', 'up', i, T0 + i * 1000);
  const recent = history.recent('api');
  assert.equal(recent.length, RECENT_RESULTS);
  assert.deepEqual(recent[0], { time: iso(T0 + 41_000), state: 'up', latencyMs: 41 });
  assert.deepEqual(recent.at(-1), { time: iso(T0 + 100_000), state: 'up', latencyMs: 100 });
});

test('keeps the last 1000 transitions, oldest first', () => {
  const history = new History();
  for (let i = 0; i < 2345; i++) history.addTransition(transition(T0 + i, i % 2 ? 'api' : null, 'down'));
  const kept = history.transitions();
  assert.equal(kept.length, MAX_TRANSITIONS);
  assert.equal(kept[0].time, iso(T0 + 1345));
  assert.equal(kept.at(-1)?.time, iso(T0 + 2344));
  assert.equal(history.query({ range: '1h', buckets: 1, checks: ['api'] }, T0).transitions.length, MAX_TRANSITIONS);
});

test('answers the transitions in the range, of the checks asked, and the overall ones unless told not to', () => {
  const history = new History();
  const now = T0 + 10 * DAY;
  const extra = { ...transition(now - 59 * MINUTE, 'api', 'down'), extra: 'dropped' };
  history.addTransition(transition(now - 2 * DAY, 'api', 'down'));
  history.addTransition(extra);
  history.addTransition(transition(now - 30 * MINUTE, null, 'degraded', null));
  history.addTransition(transition(now - 10 * MINUTE, 'db', 'down'));
  history.addTransition(transition(now - 5 * MINUTE, 'api', 'up', 'down'));
  const times = (q: { range: RangeName; checks: string[]; overall?: boolean }): string[] =>
    history.query({ buckets: 1, ...q }, now).transitions.map((t) => `${t.check}@${(now - Date.parse(t.time)) / 60e3}`);
  assert.deepEqual(times({ range: '1h', checks: ['api', 'db'] }), ['api@59', 'null@30', 'db@10', 'api@5']);
  assert.deepEqual(times({ range: '24h', checks: ['api'], overall: false }), ['api@59', 'api@5']);
  assert.deepEqual(times({ range: '7d', checks: ['api'] }), ['api@2880', 'api@59', 'null@30', 'api@5']);
  // The range is [from, to): 1h ends with the current minute and starts 59 minutes before it.
  history.addTransition(transition(now - HOUR, 'db', 'up', 'down'));
  assert.deepEqual(times({ range: '1h', checks: ['db'], overall: false }), ['db@10']);
  assert.deepEqual(Object.keys(history.transitions()[1]), ['time', 'check', 'from', 'to', 'reason']);
  assert.throws(() => history.addTransition({ ...extra, time: 'yesterday' }), /transition time must be ISO 8601/);
});

test('forgets a check removed by a reload, and names the checks it has', () => {
  const history = new History();
  history.record('api', 'up', 1, T0);
  history.record('db', 'up', 1, T0);
  assert.deepEqual(history.names(), ['api', 'db']);
  history.forget('api');
  assert.deepEqual(history.names(), ['db']);
  assert.deepEqual(history.recent('api'), []);
  assert.equal(history.uptime('api', T0)['24h'], null);
});

test('refuses a run with an unknown state, a bad time or a bad latency', () => {
  const history = new History();
  const sideways = 'sideways' as CheckState;
  assert.throws(() => history.record('api', sideways, 1, T0), /state must be up, degraded or down, got "sideways"/);
  assert.throws(() => history.record('api', 'toString' as CheckState, 1, T0), TypeError);
  assert.throws(() => history.record('api', 'up', 1, NaN), /atMs must be a time >= 0/);
  assert.throws(() => history.record('api', 'up', 1, -1), RangeError);
  assert.throws(() => history.record('api', 'up', -1, T0), /latencyMs must be a number >= 0 or null, got -1/);
  assert.throws(() => history.record('api', 'up', Infinity, T0), RangeError);
  assert.deepEqual(history.names(), []);
});

test('query refuses a range or a slice count outside the contract', () => {
  const history = new History();
  assert.throws(() => history.query({ range: '2h' as RangeName, buckets: 1, checks: [] }, T0), /unknown range "2h"/);
  for (const buckets of [0, 501, 1.5, NaN]) {
    assert.throws(() => history.query({ range: '1h', buckets, checks: [] }, T0), /buckets must be an integer 1-500/);
  }
});

test('reads GET /history query strings: defaults, 400 for a bad range or buckets, 404 for an unknown check', () => {
  const known = ['api', 'db'];
  const parse = (qs: string): ReturnType<typeof parseHistoryQuery> => parseHistoryQuery(new URLSearchParams(qs), known);
  assert.deepEqual(parse(''), { ok: true, query: { range: '24h', buckets: 90, checks: ['api', 'db'], overall: true } });
  assert.deepEqual(parse('range=90d&buckets=500&token=x'), {
    ok: true,
    query: { range: '90d', buckets: 500, checks: ['api', 'db'], overall: true },
  });
  assert.deepEqual(parse('range=1h&buckets=1&check=db&check=api&check=db'), {
    ok: true,
    query: { range: '1h', buckets: 1, checks: ['db', 'api'], overall: false },
  });
  for (const qs of ['range=2h', 'range=', 'range=toString', 'range=1h&range=24h']) {
    const answer = parse(qs);
    assert.equal(answer.ok, false, qs);
    assert.equal(!answer.ok && answer.status, 400, qs);
    assert.match(!answer.ok ? answer.error : '', /^history: range (must be one of 1h, 24h, 7d, 30d, 90d, got|given 2)/);
  }
  for (const value of ['0', '501', '', '1.5', '-1', '1e2', '9999', '1&buckets=2']) {
    const qs = `buckets=${value}`;
    const answer = parse(qs);
    assert.equal(!answer.ok && answer.status, 400, qs);
    assert.match(!answer.ok ? answer.error : '', /^history: buckets (must be an integer 1-500, got|given 2 times)/);
  }
  assert.deepEqual(parse('check=api&check=nope'), { ok: false, status: 404, error: 'history: no check named "nope"' });
  assert.equal(parse('check=').ok, false);
  assert.deepEqual(parse('range=bad&check=nope'), parse('range=bad'));
});

test('round trip: the JSON pieces read back by fromJSON give the same pieces and answers', () => {
  const history = new History();
  const now = T0 + 95 * DAY + 7 * MINUTE;
  for (let t = now - 92 * DAY; t <= now; t += 7 * MINUTE + 13_000) {
    const state: CheckState = t % 11 === 0 ? 'down' : t % 7 === 0 ? 'degraded' : 'up';
    history.record('api', state, state === 'down' ? null : ((t / 1000) % 997) / 10 + 0.1, t);
    if (t % 3 === 0) history.record('we"ird\n', 'up', 812.3, t);
  }
  history.record('new', 'up', 1, now);
  history.addTransition(transition(now - HOUR, 'api', 'down'));
  history.addTransition(transition(now - MINUTE, null, 'up', 'down'));
  const pieces = [...history.jsonPieces()];
  assert.ok(pieces.length >= 5, 'a head, a piece per check, a tail');
  const copy = History.fromJSON(JSON.parse(pieces.join('')));
  assert.equal(text(copy), pieces.join(''));
  assert.deepEqual(copy.transitions(), history.transitions());
  assert.deepEqual(copy.recent('api'), history.recent('api'));
  for (const range of Object.keys(RANGES) as RangeName[]) {
    const q = { range, buckets: 97, checks: history.names() };
    assert.deepEqual(copy.query(q, now), history.query(q, now), range);
  }
  for (const name of history.names()) assert.deepEqual(copy.uptime(name, now), history.uptime(name, now));
  assert.equal(text(History.fromJSON(JSON.parse(text(new History())))), text(new History()));
});

test('queryJson() is the text of what query() answers, for every range', () => {
  const history = new History();
  const now = T0 + 91 * DAY + 17 * MINUTE;
  for (let t = now - 91 * DAY; t <= now; t += 13 * MINUTE + 7_000) {
    const state: CheckState = t % 5 === 0 ? 'down' : t % 3 === 0 ? 'degraded' : 'up';
    history.record('api', state, state === 'down' ? null : (t % 99_991) / 100, t);
    history.record('db "main"\u2028', 'up', t % 2 === 0 ? null : 0.1, t);
  }
  history.addTransition(transition(now - 2 * HOUR, 'api', 'down'));
  history.addTransition(transition(now - 3 * DAY, null, 'degraded'));
  for (const range of Object.keys(RANGES) as RangeName[]) {
    for (const buckets of [1, 7, 90, 500]) {
      const q = { range, buckets, checks: ['api', 'db "main"\u2028', 'never-ran'], overall: buckets !== 7 };
      const pieces = [...history.queryJson(q, now)];
      assert.equal(pieces.length, 5, 'a head, a piece per check, the transitions');
      assert.deepEqual(JSON.parse(pieces.join('')), history.query(q, now), `${range} ${buckets}`);
    }
  }
  assert.throws(() => [...history.queryJson({ range: '1h', buckets: 0, checks: [] }, now)], RangeError);
});

test('a history saved an hour ago rolls its buckets forward when runs resume', () => {
  const history = new History();
  for (let m = 0; m < 1440; m++) history.record('api', 'down', 1, T0 + m * MINUTE);
  const saved = JSON.parse(text(history)) as unknown;
  const later = T0 + 1440 * MINUTE + HOUR; // restarted an hour after the last run
  const copy = History.fromJSON(saved);
  copy.record('api', 'up', 1, later);
  const day = copy.query({ range: '24h', buckets: 24, checks: ['api'] }, later);
  // The window is 5-minute buckets 13-300, minutes 65-1504: minutes 65-1439 of down runs remain, an
  // empty hour, then the run.
  assert.deepEqual(totals(day), { up: 1, degraded: 0, down: 1375 });
  // Hour slices start at minute 65: the last two hold minutes 1385-1444 (55 down runs) and 1445-1504 (the run).
  assert.deepEqual(
    day.checks[0].buckets.slice(-2).map((b) => [b.start, b.up, b.down]),
    [
      [iso(later - 115 * MINUTE), 0, 55],
      [iso(later - 55 * MINUTE), 1, 0],
    ],
  );
  const week = copy.query({ range: '7d', buckets: 7, checks: ['api'] }, later);
  assert.deepEqual(totals(week), { up: 1, degraded: 0, down: 1440 });
  assert.equal(copy.uptime('api', later)['24h'], 0.07);
});

test('a history saved ahead of the clock shows nothing from the future and drops it when runs resume', () => {
  const history = new History();
  history.record('api', 'down', 1, T0 + 2 * HOUR);
  const copy = History.fromJSON(JSON.parse(text(history)));
  const count = (range: RangeName, now: number): { up: number; degraded: number; down: number } =>
    totals(copy.query({ range, buckets: 1, checks: ['api'] }, now));
  assert.deepEqual(count('24h', T0), { up: 0, degraded: 0, down: 0 });
  copy.record('api', 'up', 1, T0);
  assert.deepEqual(count('24h', T0 + 2 * HOUR), { up: 1, degraded: 0, down: 0 });
  assert.deepEqual(count('7d', T0 + 2 * HOUR), { up: 1, degraded: 0, down: 0 });
});

test('fromJSON refuses a wrong version, wrong lengths and bad types, saying where', () => {
  const history = new History();
  history.record('api', 'up', 5, T0);
  history.record('api', 'down', null, T0 + 1);
  history.addTransition(transition(T0, 'api', 'down'));
  const good = (): unknown => JSON.parse(text(history));
  const legacy = (): unknown => version2([['api', 'up', 5, T0]], [transition(T0, 'api', 'down')]);
  const old = (): unknown => asVersion1(legacy());
  const check = (good() as { checks: unknown[] }).checks[0];
  // [what, the file (version 3, 2 or 1), the path to the value spoiled (none: the whole file), its new value
  // (undefined: removed), the error]
  const cases: Array<[string, () => unknown, Array<string | number>, unknown, RegExp]> = [
    ['not an object', good, [], [], /^history must be an object, got an array of 0 items$/],
    ['null', good, [], null, /^history must be an object, got null$/],
    ['wrong version', good, ['version'], 4, /^history\.version must be 1, 2 or 3, got 4$/],
    ['no version', good, ['version'], undefined, /^history\.version must be 1, 2 or 3, got undefined$/],
    ['no transitions', good, ['transitions'], {}, /^history\.transitions must be an array, got object/],
    ['no checks', good, ['checks'], 'x', /^history\.checks must be an array, got string/],
    ['a bad transition time', good, ['transitions', 0, 'time'], 'soon', /transitions\[0\]\.time must be ISO 8601/],
    [
      'a bad transition check',
      good,
      ['transitions', 0, 'check'],
      3,
      /transitions\[0\]\.check must be a string or null/,
    ],
    ['a bad transition from', good, ['transitions', 0, 'from'], 'sideways', /transitions\[0\]\.from must be a state/],
    ['a bad transition to', good, ['transitions', 0, 'to'], null, /transitions\[0\]\.to must be a state/],
    [
      'a bad transition reason',
      good,
      ['transitions', 0, 'reason'],
      1,
      /transitions\[0\]\.reason must be a string or null/,
    ],
    ['a check not an object', good, ['checks', 0], 'api', /^history\.checks\[0\] must be an object/],
    ['a check without a name', good, ['checks', 0, 'name'], undefined, /checks\[0\]\.name must be a string/],
    ['a check twice', good, ['checks', 1], check, /checks\[1\]\.name "api" appears twice/],
    ['no minutes', good, ['checks', 0, 'minutes'], undefined, /checks\[0\]\.minutes must be an object/],
    ['no 5 minutes', good, ['checks', 0, 'fiveMinutes'], 1, /checks\[0\]\.fiveMinutes must be an object/],
    ['no 4 hours', good, ['checks', 0, 'fourHours'], undefined, /checks\[0\]\.fourHours must be an object/],
    ['a bad end', good, ['checks', 0, 'hours', 'end'], 1.5, /hours\.end must be an integer >= -1, got 1.5/],
    [
      'a short column',
      good,
      ['checks', 0, 'minutes', 'up'],
      Array(59).fill(0),
      /minutes\.up must be an array of 60 int/,
    ],
    [
      'version 2, a short column',
      legacy,
      ['checks', 0, 'minutes', 'up'],
      Array(1439).fill(0),
      /minutes\.up must be an array of 1440 int/,
    ],
    ['version 2, a bad end', legacy, ['checks', 0, 'hours', 'end'], -2, /hours\.end must be an integer >= -1, got -2/],
    [
      'a long column',
      good,
      ['checks', 0, 'hours', 'sumTenths'],
      Array(721).fill(0),
      /hours\.sumTenths must be an array/,
    ],
    [
      'no column',
      good,
      ['checks', 0, 'hours', 'maxTenths'],
      undefined,
      /hours\.maxTenths must be an array of 720 .*undefined/,
    ],
    [
      'a fractional count',
      good,
      ['checks', 0, 'minutes', 'down', 3],
      0.5,
      /down\[3\] must be an integer 0-65535, got 0.5/,
    ],
    [
      'a count over 16 bits',
      good,
      ['checks', 0, 'hours', 'up', 3],
      65_536,
      /hours\.up\[3\] must be an integer 0-65535/,
    ],
    [
      'a negative count',
      good,
      ['checks', 0, 'minutes', 'degraded', 3],
      -1,
      /minutes\.degraded\[3\] must be an integer/,
    ],
    [
      'a string latency',
      good,
      ['checks', 0, 'minutes', 'minTenths', 3],
      '1',
      /minTenths\[3\] must be an integer 0-16777215, got "1"/,
    ],
    [
      'a latency over 24 bits',
      good,
      ['checks', 0, 'hours', 'maxTenths', 0],
      2 ** 24,
      /hours\.maxTenths\[0\] must be an integer 0-16777215, got 16777216/,
    ],
    [
      'a fractional sum',
      good,
      ['checks', 0, 'hours', 'sumTenths', 9],
      1.5,
      /sumTenths\[9\] must be an integer 0-4294967295, got 1.5/,
    ],
    [
      'a bad column of runs without latency',
      good,
      ['checks', 0, 'hours', 'noLatency'],
      'none',
      /hours\.noLatency must be an array of 720 integers, got string/,
    ],
    [
      'more runs without latency than runs',
      good,
      ['checks', 0, 'minutes', 'noLatency', 59],
      3,
      /minutes\.noLatency has more runs without a latency than runs in a bucket/,
    ],
    ['no recent list', good, ['checks', 0, 'recent'], null, /recent must be an array of at most 60 results/],
    ['a long recent list', good, ['checks', 0, 'recent'], Array(61).fill([T0, 'up', 1]), /recent must be an array/],
    ['a bad recent state', good, ['checks', 0, 'recent', 0, 1], 'meh', /recent\[0\] must be \[time ms, state/],
    ['a bad recent latency', good, ['checks', 0, 'recent', 0, 2], -5, /recent\[0\] must be/],
    ['a short recent entry', good, ['checks', 0, 'recent', 0], [T0, 'up'], /recent\[0\] must be/],
    // Version 1: Uint32 counts and latencies, a sum up to 2^53, and `count` (runs with a latency).
    [
      'version 1 without count',
      old,
      ['checks', 0, 'hours', 'count'],
      undefined,
      /hours\.count must be an array of 2160/,
    ],
    [
      'version 1, a fractional count',
      old,
      ['checks', 0, 'minutes', 'up', 3],
      0.5,
      /up\[3\] must be an integer 0-4294967295/,
    ],
    [
      'version 1, a fractional sum',
      old,
      ['checks', 0, 'hours', 'sumTenths', 9],
      1.5,
      /sumTenths\[9\] must be an integer 0-9007199254740991/,
    ],
    [
      'version 1, more latencies than runs',
      old,
      ['checks', 0, 'minutes', 'count', 1439],
      3,
      /minutes\.count has more latencies than runs/,
    ],
  ];
  for (const [what, made, path, value, message] of cases) {
    let file = made();
    if (path.length === 0) file = value;
    else {
      let parent = file as Record<string | number, unknown>;
      for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
      if (value === undefined) delete parent[path[path.length - 1]];
      else parent[path[path.length - 1]] = value;
    }
    assert.throws(
      () => History.fromJSON(file),
      (err: Error) => {
        assert.ok(err instanceof Error, what);
        assert.match(err.message, message, what);
        return true;
      },
    );
  }
  // What the checks accept: a good copy, and a recent latency of null.
  const fine = good() as { checks: Array<{ recent: unknown[][] }> };
  fine.checks[0].recent[0][2] = null;
  assert.deepEqual(History.fromJSON(fine).recent('api')[0].latencyMs, null);
});

test('reads version 2 and 1 state files and answers as a history that recorded the same runs', () => {
  // The last run falls in the last minute of a 5-minute bucket and the last hour of a 4-hour one, so the
  // rings that the old 24 h of minutes and 90 days of hours are folded into hold whole buckets only.
  const now = T0 + 95 * DAY + 3 * HOUR + 59 * MINUTE + 30_000;
  const runs: Run[] = [];
  for (let t = now - 92 * DAY; t <= now; t += 11 * MINUTE + 17_000) {
    const state: CheckState = t % 13 === 0 ? 'down' : t % 5 === 0 ? 'degraded' : 'up';
    runs.push(['api', state, state === 'down' ? null : Math.round((t / 1000) % 4999) / 10, t]);
    runs.push(['web', state, 123_456.7 + (t % 7), t]);
  }
  runs.push(['api', 'up', 2.5, now], ['web', 'up', 3, now]);
  const history = new History();
  for (const [check, state, latencyMs, atMs] of runs) history.record(check, state, latencyMs, atMs);
  const transitions = [transition(now - HOUR, 'api', 'down')];
  for (const t of transitions) history.addTransition(t);
  const v2 = version2(runs, transitions);
  const v1 = asVersion1(v2) as { version: number; checks: Array<{ minutes: object }> };
  assert.ok('count' in v1.checks[0].minutes && !('noLatency' in v1.checks[0].minutes));
  for (const file of [v2, v1]) {
    const copy = History.fromJSON(file);
    // Read back, it saves exactly what the history that recorded the runs saves.
    assert.equal(text(copy), text(history));
    for (const range of Object.keys(RANGES) as RangeName[]) {
      const q = { range, buckets: 90, checks: ['api', 'web'] };
      assert.deepEqual(copy.query(q, now), history.query(q, now), range);
    }
    assert.deepEqual(copy.uptime('api', now), history.uptime('api', now));
    assert.deepEqual(copy.recent('web'), history.recent('web'));
    assert.deepEqual(copy.transitions(), history.transitions());
  }
});

test('a version 1 bucket beyond what the rings hold is clamped, not refused', () => {
  const file = asVersion1(version2([['api', 'up', 1, T0]])) as { checks: Array<{ minutes: Record<string, number[]> }> };
  const minutes = file.checks[0].minutes;
  // The newest minute: 100,000 up runs, 70,000 of them with a latency, one of 3 hours, summing to 2^40.
  minutes.up[1439] = 100_000;
  minutes.count[1439] = 70_000;
  minutes.maxTenths[1439] = 3 * 36_000_000;
  minutes.sumTenths[1439] = 2 ** 40;
  const copy = History.fromJSON(file);
  for (const range of ['1h', '24h'] as const) {
    const answer = copy.query({ range, buckets: 1, checks: ['api'] }, T0);
    const bucket = answer.checks[0].buckets[0];
    assert.equal(bucket.up, 65_535, range);
    // 65,535 runs of which 30,000 without a latency; the sum held is 2^32 - 1 tenths.
    assert.deepEqual(bucket.latencyMs, {
      min: 1,
      avg: Math.round((2 ** 32 - 1) / 35_535) / 10,
      max: MAX_LATENCY_TENTHS / 10,
    });
  }
});

test('writes the runs without a latency only for checks that have such runs', () => {
  const history = new History();
  history.record('api', 'up', 12.5, T0);
  history.record('push', 'up', null, T0);
  history.record('push', 'down', null, T0 + MINUTE);
  history.record('push', 'up', 3, T0 + MINUTE);
  const file = JSON.parse(text(history)) as {
    version: number;
    checks: Array<{ name: string; minutes: Record<string, unknown>; hours: Record<string, unknown> }>;
  };
  assert.equal(file.version, HISTORY_VERSION);
  const [api, push] = file.checks;
  assert.deepEqual(Object.keys(api.minutes), ['end', 'up', 'degraded', 'down', 'minTenths', 'maxTenths', 'sumTenths']);
  assert.deepEqual((push.minutes.noLatency as number[]).slice(-2), [1, 1]);
  assert.deepEqual((push.hours.noLatency as number[]).slice(-1), [2]);
  const answer = history.query({ range: '1h', buckets: 60, checks: ['push'] }, T0 + MINUTE);
  assert.deepEqual(answer.checks[0].buckets.slice(-2), [
    { start: iso(T0), up: 1, degraded: 0, down: 0, latencyMs: { min: null, avg: null, max: null } },
    { start: iso(T0 + MINUTE), up: 1, degraded: 0, down: 1, latencyMs: { min: 3, avg: 3, max: 3 } },
  ]);
  // Once those runs have left every bucket, the column is left out again.
  history.record('push', 'up', 1, T0 + 100 * DAY);
  const later = JSON.parse(text(history)) as typeof file;
  assert.equal('noLatency' in later.checks[1].hours, false);
  assert.equal(text(History.fromJSON(later)), text(history));
});

test('a bucket counts at most 65,535 runs of a state, and of runs without a latency; more are dropped whole', () => {
  const history = new History();
  // Floods no schedule makes, in one minute: 70,000 up runs of 20 ms, then 10 slow ones (dropped: up is full),
  // then 40,000 degraded and 30,000 down runs without a latency (the last 4,465 dropped: 65,535 of those is
  // full), then one down run of 900 ms.
  for (let i = 0; i < 70_000; i++) history.record('api', 'up', 20, T0 + i * 0.5);
  for (let i = 0; i < 10; i++) history.record('api', 'up', 900, T0 + 40_000 + i);
  for (let i = 0; i < 70_000; i++) history.record('api', i < 40_000 ? 'degraded' : 'down', null, T0 + 45_000 + i * 0.2);
  history.record('api', 'down', 900, T0 + 59_999);
  const minute = history.query({ range: '1h', buckets: 60, checks: ['api'] }, T0).checks[0].buckets[59];
  assert.deepEqual(minute, {
    start: iso(T0),
    up: 65_535,
    degraded: 40_000,
    down: 25_536,
    latencyMs: { min: 20, avg: Math.round((65_535 * 200 + 9000) / 65_536) / 10, max: 900 },
  });
  const hour = history.query({ range: '7d', buckets: 168, checks: ['api'] }, T0).checks[0].buckets[167];
  assert.deepEqual([hour.up, hour.degraded, hour.down], [65_535, 40_000, 25_536]);
  assert.deepEqual(history.uptime('api', T0), { '24h': 80.51, '7d': 80.51, '30d': 80.51 });
  assert.equal(history.recent('api').length, RECENT_RESULTS);
  // The full bucket survives a save.
  const copy = History.fromJSON(JSON.parse(text(history)));
  assert.deepEqual(copy.query({ range: '1h', buckets: 60, checks: ['api'] }, T0).checks[0].buckets[59], minute);
});

test('keeps latencies to 0.1 ms up to 27 min 57.7 s, and a longer one as that', () => {
  const history = new History();
  history.record('api', 'up', 0.04, T0);
  history.record('api', 'up', 6553.6, T0 + 1);
  history.record('api', 'up', 1_677_721.5, T0 + 2);
  history.record('api', 'up', 123_456.78, T0 + MINUTE);
  history.record('api', 'up', 7 * DAY, T0 + 2 * MINUTE);
  const q = { range: '1h', buckets: 60, checks: ['api'] } as const;
  const latencies = (h: History): unknown[] =>
    h
      .query(q, T0 + 2 * MINUTE)
      .checks[0].buckets.slice(-3)
      .map((b) => b.latencyMs);
  const expected = [
    { min: 0, avg: Math.round((65_536 + 16_777_215) / 3) / 10, max: 1_677_721.5 },
    { min: 123_456.8, avg: 123_456.8, max: 123_456.8 },
    { min: 1_677_721.5, avg: 1_677_721.5, max: 1_677_721.5 },
  ];
  assert.deepEqual(latencies(history), expected);
  assert.deepEqual(latencies(History.fromJSON(JSON.parse(text(history)))), expected);
  assert.deepEqual(
    history.recent('api').map((r) => r.latencyMs),
    [0, 6553.6, 1_677_721.5, 123_456.8, MAX_LATENCY_TENTHS / 10],
  );
  // A bucket's latency sum stops at 2^32 - 1 tenths (119 hours): more than a check's runs can take in an
  // hour, since they never overlap; only runs recorded at will get there.
  for (let i = 0; i < 300; i++) history.record('flood', 'up', 25 * MINUTE, T0 + i);
  const flood = history.query({ range: '1h', buckets: 1, checks: ['flood'] }, T0).checks[0].buckets[0];
  assert.deepEqual(flood.latencyMs, { min: 25 * MINUTE, avg: Math.round((2 ** 32 - 1) / 300) / 10, max: 25 * MINUTE });
});
