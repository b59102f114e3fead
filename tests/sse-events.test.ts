// Named events: publishEvent() sends `event: <name>` with an id of the same sequence as
// snapshots; browsers and the eventsource client receive them with addEventListener, never
// in onmessage; they are kept for replay and never become the snapshot a new stream gets.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import { SseError } from '../sse.ts';
import { openStream, sleep, startHubServer, startInProcess, withDeadline } from './helpers.ts';

const seqOf = (id: string): number => Number(id.split('-')[1]);

test('the eventsource client receives named events with addEventListener and snapshots in onmessage', async () => {
  const service = await startInProcess({ STATUS_INTERVAL_MS: '60000', HEARTBEAT_MS: '0' });
  const source = new EventSource(`${service.url}/events`);
  try {
    const messages: MessageEvent[] = [];
    const deploys: MessageEvent[] = [];
    let firstMessage!: () => void;
    const opened = new Promise<void>((resolve) => {
      firstMessage = resolve;
    });
    let twoDeploys!: () => void;
    const deployed = new Promise<void>((resolve) => {
      twoDeploys = resolve;
    });
    source.onmessage = (event) => {
      messages.push(event);
      firstMessage();
    };
    source.addEventListener('deploy', (event) => {
      deploys.push(event);
      if (deploys.length === 2) twoDeploys();
    });
    await withDeadline(opened, 10_000, 'the first snapshot');
    const first = service.hub.publishEvent('deploy', '{"version":"1.2.3"}');
    const snapshot = service.hub.publishSnapshot('{"status":"up"}');
    const second = service.hub.publishEvent('deploy', '{"version":"1.2.4"}');
    await withDeadline(deployed, 10_000, 'two deploy events');
    assert.deepEqual(
      deploys.map((e) => [e.type, e.data, e.lastEventId]),
      [
        ['deploy', '{"version":"1.2.3"}', first],
        ['deploy', '{"version":"1.2.4"}', second],
      ],
    );
    // One sequence for both kinds: the snapshot between them has the id between theirs.
    assert.deepEqual([seqOf(snapshot) - seqOf(first), seqOf(second) - seqOf(snapshot)], [1, 1]);
    assert.ok(
      messages.every((e) => e.type === 'message' && !e.data.includes('1.2.')),
      'no named event in onmessage',
    );
    assert.ok(messages.some((e) => e.lastEventId === snapshot));
  } finally {
    source.close();
    await service.close();
  }
});

test('a named event is written as event, id and data lines, data split on its line breaks', async () => {
  const hubServer = await startHubServer();
  try {
    const client = await openStream(hubServer.url);
    const id = hubServer.hub.publishEvent('note.v2', 'line one\nline two');
    await client.waitForEvents(1);
    assert.ok(client.raw.endsWith(`id: ${id}\nevent: note.v2\ndata: line one\ndata: line two\n\n`), client.raw);
    assert.deepEqual(
      { event: client.events[0].event, id: client.events[0].id, data: client.events[0].data },
      { event: 'note.v2', id, data: 'line one\nline two' },
    );
    client.close();
  } finally {
    await hubServer.close();
  }
});

test('publishEvent refuses reserved and malformed names, and publishes nothing then', async () => {
  const hubServer = await startHubServer();
  try {
    const client = await openStream(hubServer.url);
    const before = hubServer.hub.publishSnapshot('{}');
    const bad = ['message', 'done', 'reset', '', '1st', '-x', 'a b', 'a:b', 'x\ndata: injected', 'é', 'a'.repeat(65)];
    for (const name of bad) {
      assert.throws(() => hubServer.hub.publishEvent(name, '{}'), SseError, JSON.stringify(name));
    }
    assert.throws(() => hubServer.hub.publishEvent('message', '{}'), /not message, done, reset, got "message"/);
    // Longest and most varied accepted name.
    const ok = hubServer.hub.publishEvent(`A${'z9_.-'.repeat(12)}abc`, '{}');
    assert.equal(seqOf(ok), seqOf(before) + 1, 'a refused name used no sequence number');
    await client.waitForEvents(2);
    await sleep(50);
    assert.equal(client.events.length, 2);
    client.close();
  } finally {
    await hubServer.close();
  }
});

test('a new stream gets the latest snapshot, not a later named event, and waits when there is none', async () => {
  const hubServer = await startHubServer();
  try {
    const early = await openStream(hubServer.url);
    hubServer.hub.publishEvent('deploy', '{"n":1}');
    await early.waitForEvents(1);
    await sleep(50);
    // No snapshot yet: retry, then the live stream only.
    const waiting = await openStream(hubServer.url);
    const snapshot = hubServer.hub.publishSnapshot('{"n":2}');
    hubServer.hub.publishEvent('deploy', '{"n":3}');
    await waiting.waitForEvents(2);
    assert.deepEqual(
      waiting.blocks.map((b) => b.retry ?? b.event ?? b.data),
      [1000, '{"n":2}', 'deploy'],
    );
    const late = await openStream(hubServer.url);
    await late.waitForEvents(1);
    await sleep(50);
    assert.deepEqual(
      late.events.map((e) => [e.id, e.data]),
      [[snapshot, '{"n":2}']],
    );
    for (const c of [early, waiting, late]) c.close();
  } finally {
    await hubServer.close();
  }
});
