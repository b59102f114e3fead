// Broadcast: an event reaches every open stream exactly once and in order, also when the
// hub writes it in slices (more streams than one slice) and streams open meanwhile.

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { parseEventFilter, SseHub } from '../sse.ts';
import { openStream, type SseClient, startInProcess, waitFor } from './helpers.ts';

// More than two slices of sse.ts's BROADCAST_SLICE (500).
const STREAMS = 1200;

test('every stream gets every event exactly once and in order when a broadcast spans several slices', async () => {
  // A long interval: the test publishes by hand; the poller's own rounds stay out of the way.
  const service = await startInProcess({
    STATUS_INTERVAL_MS: '600000',
    HEARTBEAT_MS: '0',
    LOG_LEVEL: 'error',
    MAX_CLIENTS: '5000',
  });
  const clients: SseClient[] = [];
  try {
    for (let i = 0; i < STREAMS; i += 200) {
      clients.push(...(await Promise.all(Array.from({ length: 200 }, () => openStream(`${service.url}/events`)))));
    }
    await Promise.all(clients.map((c) => c.waitForEvents(1, 20_000)));
    // Back to back: the second publish() finds the first broadcast still running.
    const ids = [service.hub.publishSnapshot('{"n":1}'), service.hub.publishSnapshot('{"n":2}')];
    // Streams that open while the broadcast is under way.
    const late = await Promise.all(Array.from({ length: 50 }, () => openStream(`${service.url}/events`)));
    ids.push(service.hub.publishSnapshot('{"n":3}'));
    await waitFor(
      () => clients.every((c) => c.events.length >= 4) && late.every((c) => c.events.length >= 2),
      20_000,
      'every stream to get its events',
    );
    for (const c of clients) {
      const got = c.events.slice(1).map((e) => e.id);
      assert.deepEqual(got, ids, 'an early stream got exactly the three ids, in order');
    }
    for (const c of late) {
      const got = c.events.map((e) => e.id);
      assert.equal(new Set(got).size, got.length, `a late stream got an event twice: ${got.join(' ')}`);
      assert.equal(got[got.length - 1], ids[2]);
    }
    clients.push(...late);
  } finally {
    for (const c of clients) c.close();
    await service.close();
  }
});

test('a stream opened during a broadcast gets that event once, and a resumer naming it not again', async () => {
  // A broadcast to 500 streams, one per turn: new streams open during it.
  const { hub, url, close } = await startOneStreamPerTurnHub();
  const clients: SseClient[] = [];
  try {
    for (let i = 0; i < 500; i += 100)
      clients.push(...(await Promise.all(Array.from({ length: 100 }, () => openStream(url)))));
    const first = hub.publishSnapshot('one');
    const [fresh, resumers] = await Promise.all([
      Promise.all(Array.from({ length: 20 }, () => openStream(url))),
      Promise.all(Array.from({ length: 20 }, () => openStream(url, { 'Last-Event-ID': first }))),
    ]);
    // They opened before the broadcast reached its end: it had not yet reached the last early stream.
    const last = clients.at(-1)!;
    assert.equal(
      last.events.length,
      0,
      'the broadcast was over before the new streams opened: the test proves nothing',
    );
    await waitFor(() => last.events.length === 1, 10_000, 'the broadcast to end');
    const second = hub.publishSnapshot('two');
    await waitFor(
      () => [...fresh, ...resumers].every((c) => c.events.some((e) => e.id === second)),
      10_000,
      'the second event',
    );
    for (const c of fresh)
      assert.deepEqual(
        c.events.map((e) => e.id),
        [first, second],
      );
    for (const c of resumers)
      assert.deepEqual(
        c.events.map((e) => e.id),
        [second],
      );
    clients.push(...fresh, ...resumers);
  } finally {
    for (const c of clients) c.close();
    close();
  }
});

test('an event published during a broadcast joins it: the streams still ahead get both, in order, at once', async () => {
  // One stream per turn; one of the streams takes snapshots only.
  const { hub, url, close } = await startOneStreamPerTurnHub();
  const clients: SseClient[] = [];
  try {
    for (let i = 0; i < 4; i++) clients.push(await openStream(url));
    clients.push(await openStream(`${url}?events=message`));
    const sentBefore = hub.stats.eventsSent;
    const snapshot = hub.publishSnapshot('{"n":1}');
    const deploy = hub.publishEvent('deploy', '{"v":2}');
    // The first stream has the snapshot; the deploy waits for the broadcast's next turns
    // instead of the rest of the snapshot's broadcast being written at once.
    assert.equal(hub.stats.eventsSent - sentBefore, 1);
    await waitFor(() => clients.slice(0, 4).every((c) => c.events.length === 2), 10_000, 'both events everywhere');
    for (const c of clients.slice(0, 4)) {
      assert.deepEqual(
        c.events.map((e) => [e.id, e.event ?? 'message']),
        [
          [snapshot, 'message'],
          [deploy, 'deploy'],
        ],
      );
    }
    const filtered = clients[4] as SseClient;
    await waitFor(() => filtered.events.length === 1, 10_000, 'the snapshot on the filtered stream');
    const third = hub.publishSnapshot('{"n":3}');
    await waitFor(() => filtered.events.length === 2, 10_000, 'the next snapshot on the filtered stream');
    assert.deepEqual(
      filtered.events.map((e) => e.id),
      [snapshot, third],
      'the deploy joined the broadcast but stayed out of a stream whose filter refuses it',
    );
    // 4 streams got two events and the filtered one its snapshot; then the third snapshot to all 5.
    await waitFor(() => clients.every((c) => c.events.length >= 2 && c.events.at(-1)?.id === third), 10_000, 'third');
    assert.equal(hub.stats.eventsSent - sentBefore, 4 * 2 + 1 + 5);
  } finally {
    for (const c of clients) c.close();
    close();
  }
});

/**
 * The hub alone behind a plain server, writing one stream per turn of the event loop, so that
 * a broadcast lasts long enough for streams to open and events to come during it. The server
 * passes on Last-Event-ID and ?events=.
 */
async function startOneStreamPerTurnHub(): Promise<{ hub: SseHub; url: string; close: () => void }> {
  const hub = new SseHub({
    retryMs: 1000,
    heartbeatMs: 0,
    replaySize: 10,
    maxClients: 2000,
    maxBufferedBytes: 1 << 20,
    broadcastSlice: 1,
  });
  const server = http.createServer((req, res) => {
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    const lastEventId = (req.headers['last-event-id'] as string | undefined) ?? null;
    hub.open(res, { lastEventId, events: parseEventFilter(query.get('events')) });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    hub,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}
