// GET /history end to end (docs/history.md): counts match what the targets answered, uptime over
// the range, range/buckets/check validation, the same protection as /status, and which first
// states after start-up are transitions.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { request, sleep, startInProcess, startTarget, type Target, waitFor } from './helpers.ts';

// /counted answers 200 to its first HEALTHY_RUNS requests and 503 after; /slow-* and /fast-*
// answer 200 (…-ok) or 503 (…-bad) after a delay. The target counts answers and open requests.
const HEALTHY_RUNS = 6;
let target: Target;
let base = '';
const counted = (): number => target.hits('/counted');

before(async () => {
  target = await startTarget((path, hit) => {
    if (path === '/counted') return { code: hit <= HEALTHY_RUNS ? 200 : 503 };
    return { code: path.endsWith('-bad') ? 503 : 200, delayMs: path.startsWith('/slow') ? 400 : 0 };
  });
  base = target.url;
});
after(() => target?.close());

interface Bucket {
  readonly start: string;
  readonly up: number;
  readonly degraded: number;
  readonly down: number;
  readonly latencyMs: { readonly min: number | null; readonly avg: number | null; readonly max: number | null };
}
interface Answer {
  readonly range: string;
  readonly buckets: number;
  readonly from: string;
  readonly to: string;
  readonly checks: Array<{ readonly name: string; readonly uptime: number | null; readonly buckets: Bucket[] }>;
  readonly transitions: Array<{ check: string | null; from: string | null; to: string; reason: string | null }>;
}

async function history(url: string, query = ''): Promise<Answer> {
  const reply = await request(`${url}/history${query}`);
  assert.equal(reply.status, 200, reply.body);
  assert.match(String(reply.headers['content-type']), /^application\/json/);
  return JSON.parse(reply.body) as Answer;
}

function sum(buckets: readonly Bucket[], state: 'up' | 'degraded' | 'down'): number {
  return buckets.reduce((n, b) => n + b[state], 0);
}

test('GET /history counts every run the target answered, and uptime is the share of runs not down', async () => {
  const service = await startInProcess({ CHECKS: `web=${base}/counted`, STATUS_INTERVAL_MS: '100', HEARTBEAT_MS: '0' });
  try {
    await waitFor(() => counted() >= HEALTHY_RUNS + 5, 15_000, 'five runs after the healthy ones');
    // No more runs: the one under way still lands, then the counts hold still.
    service.poller.stop();
    const recorded = (): number => {
      const stats = service.poller.checkStats.get('web');
      return (stats?.ok ?? 0) + (stats?.fail ?? 0);
    };
    let seen = -1;
    await waitFor(
      async () => {
        const still = target.inFlight === 0 && recorded() === counted() && counted() === seen;
        seen = counted();
        await sleep(300);
        return still;
      },
      10_000,
      'every answered run recorded, and no more runs',
    );
    const runs = counted();
    const uptime = Math.floor((HEALTHY_RUNS * 10_000) / runs) / 100;
    for (const query of ['?range=1h&buckets=7', '', '?range=7d&buckets=500', '?range=90d&buckets=1&check=web']) {
      const answer = await history(service.url, query);
      const [web] = answer.checks;
      assert.equal(web.name, 'web');
      assert.equal(sum(web.buckets, 'up'), HEALTHY_RUNS, query);
      assert.equal(sum(web.buckets, 'down'), runs - HEALTHY_RUNS, query);
      assert.equal(sum(web.buckets, 'degraded'), 0, query);
      assert.equal(web.uptime, uptime, query);
    }

    const answer = await history(service.url, '?range=1h&buckets=12');
    assert.equal(answer.range, '1h');
    assert.equal(answer.buckets, 12);
    assert.equal(Date.parse(answer.to) - Date.parse(answer.from), 3_600_000);
    assert.ok(Date.parse(answer.to) >= Date.now() - 1000, 'the range ends now');
    const { buckets } = answer.checks[0];
    assert.equal(buckets.length, 12);
    assert.equal(buckets[0].start, answer.from);
    const starts = buckets.map((b) => Date.parse(b.start));
    assert.deepEqual(
      starts,
      [...starts].sort((a, b) => a - b),
      'oldest first',
    );
    for (const b of buckets) {
      const { min, avg, max } = b.latencyMs;
      if (b.up + b.down === 0) assert.deepEqual(b.latencyMs, { min: null, avg: null, max: null });
      else assert.ok(min !== null && avg !== null && max !== null && min <= avg && avg <= max, JSON.stringify(b));
    }
    assert.deepEqual(
      answer.transitions.map(({ check, from, to }) => ({ check, from, to })),
      [
        { check: 'web', from: 'up', to: 'down' },
        { check: null, from: 'up', to: 'down' },
      ],
    );
    assert.equal(answer.transitions[0].reason, 'HTTP 503, expected 200-399');
    // A check asked by name leaves out the overall transitions.
    assert.deepEqual(
      (await history(service.url, '?check=web')).transitions.map((t) => t.check),
      ['web'],
    );
  } finally {
    await service.close();
  }
});

test('GET /history refuses a bad range or buckets with 400 and an unknown check with 404', async () => {
  const service = await startInProcess({ CHECKS: `web=${base}/fast-ok,api=${base}/fast-ok`, HEARTBEAT_MS: '0' });
  try {
    const cases: Array<[string, number]> = [
      ['?range=2h', 400],
      ['?range=', 400],
      ['?range=1H', 400],
      ['?buckets=0', 400],
      ['?buckets=501', 400],
      ['?buckets=abc', 400],
      ['?buckets=1.5', 400],
      ['?buckets=-1', 400],
      ['?buckets=', 400],
      ['?range=1h&range=24h', 400],
      ['?check=nope', 404],
      ['?check=web&check=nope', 404],
      ['?check=', 404],
    ];
    for (const [query, status] of cases) {
      const reply = await request(`${service.url}/history${query}`);
      assert.equal(reply.status, status, `${query}: ${reply.body}`);
      const body = JSON.parse(reply.body) as { error: string };
      assert.equal(typeof body.error, 'string', query);
      assert.ok(!body.error.includes('<'), query);
    }
    assert.equal((await history(service.url, '?buckets=1')).checks[0].buckets.length, 1);
    assert.equal((await history(service.url, '?buckets=500')).checks[1].buckets.length, 500);
    const both = await history(service.url, '?check=api&check=web&check=api');
    assert.deepEqual(
      both.checks.map((c) => c.name),
      ['api', 'web'],
    );
    const head = await request(`${service.url}/history`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    const post = await request(`${service.url}/history`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD, OPTIONS');
  } finally {
    await service.close();
  }
});

test('GET /history needs AUTH_TOKEN as /status does: header, query or nothing else', async () => {
  const token = 'history-read-token';
  const service = await startInProcess({ CHECKS: `web=${base}/fast-ok`, AUTH_TOKEN: token, HEARTBEAT_MS: '0' });
  try {
    const without = await request(`${service.url}/history`);
    assert.equal(without.status, 401);
    assert.match(String(without.headers['www-authenticate']), /^Bearer/);
    assert.equal((await request(`${service.url}/history`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await request(`${service.url}/history?token=wrong`)).status, 401);
    // Validation comes after access: nothing about the query is told without the token.
    assert.equal((await request(`${service.url}/history?range=2h`)).status, 401);
    assert.equal(
      (await request(`${service.url}/history`, { headers: { authorization: `Bearer ${token}` } })).status,
      200,
    );
    assert.equal((await request(`${service.url}/history?token=${token}&range=1h`)).status, 200);
  } finally {
    await service.close();
  }
});

test('a first state after start-up is a transition only when not up, whatever order results come in', async () => {
  // The healthy check answers first, then the failing one; and the other way round.
  for (const [good, bad] of [
    ['fast-ok', 'slow-bad'],
    ['slow-ok', 'fast-bad'],
  ]) {
    const service = await startInProcess({
      CHECKS: `good=${base}/${good},bad=${base}/${bad}`,
      STATUS_INTERVAL_MS: '100',
      HEARTBEAT_MS: '0',
    });
    try {
      await waitFor(
        async () => (await history(service.url, '?range=1h')).transitions.length >= 2,
        10_000,
        'two transitions',
      );
      await sleep(500);
      const { transitions } = await history(service.url, '?range=1h');
      assert.deepEqual(
        transitions.map(({ check, from, to }) => ({ check, from, to })),
        [
          { check: 'bad', from: null, to: 'down' },
          { check: null, from: null, to: 'degraded' },
        ],
        `${good}, ${bad}`,
      );
      assert.equal(transitions[1].reason, 'bad is down');
      const all = await history(service.url, '?range=1h');
      assert.ok(sum(all.checks[0].buckets, 'up') >= 1);
    } finally {
      await service.close();
    }
  }
});
