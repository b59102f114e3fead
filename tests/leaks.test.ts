// Leaks: 2,000 streams opened and closed in waves leave nothing behind: no open stream,
// no timer, and the heap after a forced GC is back within a small margin of the start.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { openStream, request, sleep, startInProcess, waitFor } from './helpers.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc();
    await sleep(50);
  }
  return process.memoryUsage().heapUsed;
}

test('2,000 streams in waves leave sse_clients at 0 and the heap where it started', async () => {
  const service = await startInProcess({
    STATUS_INTERVAL_MS: '200',
    HEARTBEAT_MS: '100',
    LOG_LEVEL: 'error',
    MAX_CLIENTS: '1000',
  });
  try {
    // Warm-up waves as large as the measured ones, so that what Node pools and builds lazily (parsers,
    // JIT code) has grown to its size before the baseline: measured, it levels off after two waves of 500.
    const wave = async (size: number): Promise<void> => {
      const clients = await Promise.all(Array.from({ length: size }, () => openStream(`${service.url}/events`)));
      await Promise.all(clients.map((c) => c.waitForEvents(1, 20_000)));
      for (const c of clients) c.close();
      await waitFor(() => service.hub.size === 0, 20_000, 'the wave to close');
    };
    await wave(100);
    for (let i = 0; i < 2; i++) await wave(500);
    const baseline = await settledHeap();
    for (let i = 0; i < 4; i++) await wave(500);
    const metrics = (await request(`${service.url}/metrics`)).body;
    assert.match(metrics, /^sse_clients 0$/m);
    assert.match(metrics, /^sse_connections_total 3100$/m);
    const grown = (await settledHeap()) - baseline;
    // One leaked stream costs kilobytes (response, socket, parser): 2,000 of them would be megabytes.
    assert.ok(grown < 1024 * 1024, `heap grew by ${(grown / 1024).toFixed(0)} KiB after 2,000 streams`);
  } finally {
    await service.close();
  }
});
