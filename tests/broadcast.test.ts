// Broadcast: an event reaches every open stream exactly once and in order, also when the
// hub writes it in slices (more streams than one slice) and streams open meanwhile.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openStream, startInProcess, waitFor, type SseClient } from './helpers.ts';

// More than two slices of sse.ts's BROADCAST_SLICE (500).
const STREAMS = 1200;

test('every stream gets every event exactly once and in order when a broadcast spans several slices', async () => {
  // A long interval: the test publishes by hand; the poller's own rounds stay out of the way.
  const service = await startInProcess({ STATUS_INTERVAL_MS: '600000', HEARTBEAT_MS: '0', LOG_LEVEL: 'error', MAX_CLIENTS: '5000' });
  const clients: SseClient[] = [];
  try {
    for (let i = 0; i < STREAMS; i += 200) {
      clients.push(...(await Promise.all(Array.from({ length: 200 }, () => openStream(`${service.url}/events`)))));
    }
    await Promise.all(clients.map((c) => c.waitForEvents(1, 20_000)));
    // Back to back: the second publish() finds the first broadcast still running.
    const ids = [service.hub.publish('{"n":1}'), service.hub.publish('{"n":2}')];
    // Streams that open while the broadcast is under way.
    const late = await Promise.all(Array.from({ length: 50 }, () => openStream(`${service.url}/events`)));
    ids.push(service.hub.publish('{"n":3}'));
    await waitFor(() => clients.every((c) => c.events.length >= 4) && late.every((c) => c.events.length >= 2), 20_000, 'every stream to get its events');
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
