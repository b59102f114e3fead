// The source runs with no build step: Node >= 22.18 strips the types of server.ts
// itself, as `node server.ts` does in the image. This runs the service with the binary
// of the `node@24` npm package, which .ci/run installs into .cache/node24.

import assert from 'node:assert/strict';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { openStream, ROOT, request, skipUnless, sleep, startService, waitFor, withDeadline } from './helpers.ts';

const NODE24 = process.env.NODE24_BIN ?? join(ROOT, '.cache/node24/node_modules/node/bin/node');

test('`node server.ts` on Node 24 streams status with no build step and stops cleanly', {
  skip: skipUnless(NODE24, 'Node 24 (npm install --prefix .cache/node24 node@24)'),
}, async () => {
  const service = await startService({ STATUS_INTERVAL_MS: '300' }, { node: NODE24 });
  try {
    const listening = JSON.parse(service.logs.find((l) => l.includes('"msg":"listening"'))!) as { node: string };
    assert.match(listening.node, /^v24\./);
    const stream = await openStream(`${service.url}/events`);
    const events = await stream.waitForEvents(2, 10_000);
    assert.equal(stream.blocks[0].retry, 3000);
    assert.equal(JSON.parse(events[1].data!).status, 'up');
    assert.equal((await request(`${service.url}/healthz`)).status, 200);
    assert.equal(await service.stop(), 0);
    assert.equal(stream.blocks.at(-1)!.event, 'done');
    // Type stripping is stable in Node 24: nothing on stderr, not even a warning.
    assert.equal(service.stderr.join(''), '');
  } finally {
    await service.stop('SIGKILL');
  }
});

test("on Node 24 a stream's connection gives its request parser back", {
  skip: skipUnless(NODE24, 'Node 24 (npm install --prefix .cache/node24 node@24)'),
}, async () => {
  const service = await startService({ STATUS_INTERVAL_MS: '300' }, { node: NODE24 });
  const socket = net.connect({ host: '127.0.0.1', port: service.port });
  try {
    socket.on('error', () => {});
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => /\ndata: /.test(received), 10_000, 'the first snapshot');
    await sleep(100);
    // With its parser, Node would hold this request behind the stream and keep the
    // connection; without it, the service closes the connection.
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await withDeadline(closed, 5000, 'the connection to close');
    assert.equal(received.match(/HTTP\/1\.1 /g)?.length, 1);
    assert.equal(await service.stop(), 0);
  } finally {
    socket.destroy();
    await service.stop('SIGKILL');
  }
});

// V8 13 reads an allocation rate of exactly 0 on its C++ heap as the highest, so without
// memory-reducer.ts its reducer says "high alloc" at every look and the RSS of a peak stays.
test('on Node 24 V8 finds the embedder heap quiet, so its memory reducer can run', {
  skip: skipUnless(NODE24, 'Node 24 (npm install --prefix .cache/node24 node@24)'),
}, async () => {
  const service = await startService(
    {},
    { node: NODE24, nodeArgs: ['--trace-memory-reducer', '--trace-mutator-utilization'] },
  );
  try {
    // The reducer looks about 8 s after start-up and every 8 s after that. A look can find
    // start-up's young allocations still counting, or the touch just counted: wait for more.
    const lowAlloc = (): boolean => service.logs.some((l) => l.includes('Memory reducer: low alloc'));
    await waitFor(lowAlloc, 40_000, 'the memory reducer to find the process quiet').catch((err: Error) => {
      const embedder = service.logs.filter((l) => l.includes('Embedder mutator utilization'));
      throw new Error(`${err.message}; V8 said:\n${embedder.join('\n')}`);
    });
    assert.equal(await service.stop(), 0);
  } finally {
    await service.stop('SIGKILL');
  }
});
