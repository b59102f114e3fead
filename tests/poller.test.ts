// The shared poller (SPEC §6): one check round per interval whatever the number of
// streams, started by the first stream, stopped when the last one closes; /status runs
// one round on demand, shared by concurrent requests, without starting the poller.

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { openStream, request, sleep, startInProcess, waitFor, type SseClient } from './helpers.ts';

// A target that counts the checks it gets, in all and by path, and can be made slow. Each
// test that counts exact hits checks its own path: a round of an earlier test's service
// may still be on its way when that service has closed.
let hits = 0;
const hitsByPath = new Map<string, number>();
let delayMs = 0;
const target = http.createServer((req, res) => {
  hits++;
  hitsByPath.set(req.url!, (hitsByPath.get(req.url!) ?? 0) + 1);
  setTimeout(() => res.end('ok'), delayMs);
});
let targetUrl = '';

before(async () => {
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}/healthz`;
});
after(() => {
  target.closeAllConnections();
  target.close();
});

test('50 streams cost one check per interval, and the checks stop when the last stream closes', async () => {
  const INTERVAL_MS = 400;
  const service = await startInProcess({ STATUS_INTERVAL_MS: String(INTERVAL_MS), CHECKS: `app=${targetUrl}`, HEARTBEAT_MS: '0' });
  try {
    hits = 0;
    const clients: SseClient[] = [];
    for (let i = 0; i < 50; i++) clients.push(await openStream(`${service.url}/events`));
    const startHits = hits;
    const startRounds = service.poller.rounds;
    await sleep(6 * INTERVAL_MS);
    const rounds = service.poller.rounds - startRounds;
    const checks = hits - startHits;
    assert.equal(checks, rounds, 'one check per round');
    // About six rounds in six intervals; never one per stream.
    assert.ok(rounds >= 3 && rounds <= 7, `rounds in 6 intervals: ${rounds}`);
    // Every stream got the same events, the same bytes.
    const last = clients[0].events.at(-1)!;
    await Promise.all(clients.map((c) => c.waitFor((e) => e.id === last.id, 1, 5000)));
    for (const c of clients) assert.equal(c.events.find((e) => e.id === last.id)!.data, last.data);
    assert.equal(JSON.parse(last.data!).checks[0].detail, 'HTTP 200');

    for (const c of clients) c.close();
    await waitFor(() => service.hub.size === 0, 5000, 'all streams closed');
    assert.equal(service.poller.active, false);
    const hitsAtClose = hits;
    await sleep(4 * INTERVAL_MS);
    // A round that was already running may finish; no new one starts.
    assert.ok(hits - hitsAtClose <= 1, `checks after the last stream closed: ${hits - hitsAtClose}`);
  } finally {
    await service.close();
  }
});

test('rounds never overlap: with a check slower than the interval, the next round starts when it ends', async () => {
  const service = await startInProcess({ STATUS_INTERVAL_MS: '100', CHECK_TIMEOUT_MS: '5000', CHECKS: `slow=${targetUrl}`, HEARTBEAT_MS: '0' });
  delayMs = 300;
  let inFlight = 0;
  let maxInFlight = 0;
  const onRequest = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    res.once('finish', () => inFlight--);
  };
  target.on('request', onRequest);
  try {
    const client = await openStream(`${service.url}/events`);
    const events = await client.waitForEvents(4, 10_000);
    client.close();
    assert.equal(maxInFlight, 1);
    // Rounds are 300 ms long and back to back, not every 100 ms.
    for (let i = 1; i < events.length; i++) assert.ok(events[i].at - events[i - 1].at >= 250, `gap ${events[i].at - events[i - 1].at} ms`);
  } finally {
    target.off('request', onRequest);
    delayMs = 0;
    await service.close();
  }
});

test('/status runs one round when the snapshot is stale, shared by concurrent requests, and does not start the poller', async () => {
  const service = await startInProcess({ STATUS_INTERVAL_MS: '60000', CHECKS: `app=${targetUrl}?on-demand` });
  const hitsHere = (): number => hitsByPath.get('/healthz?on-demand') ?? 0;
  delayMs = 100;
  try {
    const replies = await Promise.all(Array.from({ length: 10 }, () => request(`${service.url}/status`)));
    assert.equal(hitsHere(), 1);
    const bodies = new Set(replies.map((r) => r.body));
    assert.equal(bodies.size, 1);
    for (const r of replies) {
      assert.equal(r.status, 200);
      assert.equal(r.headers['cache-control'], 'no-store');
      assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
    }
    assert.equal(JSON.parse(replies[0].body).status, 'up');
    assert.equal(service.poller.active, false);
    // Fresh now: the next request is answered from it, no new check.
    await request(`${service.url}/status`);
    assert.equal(hitsHere(), 1);
  } finally {
    delayMs = 0;
    await service.close();
  }
});

test('a stream that opens while the snapshot is fresh gets it at once and starts no extra round', async () => {
  const service = await startInProcess({ STATUS_INTERVAL_MS: '60000', CHECKS: `app=${targetUrl}?fresh-stream` });
  try {
    await request(`${service.url}/status`);
    const client = await openStream(`${service.url}/events`);
    await client.waitForEvents(1, 2000);
    client.close();
    assert.equal(hitsByPath.get('/healthz?fresh-stream'), 1);
    assert.equal(service.poller.rounds, 1);
  } finally {
    await service.close();
  }
});
