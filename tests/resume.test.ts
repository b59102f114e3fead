// Resume (SPEC §4): Last-Event-ID, as a header or ?lastEventId=, replays what the client
// missed from history, in order, without the named event; any id that is not ours gets
// the latest snapshot only.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openStream, sleep, startInProcess, type InProcess, type SseClient } from './helpers.ts';

let service: InProcess;
let ids: string[];

before(async () => {
  // A long interval: the snapshot stays fresh for the whole file, so opening a stream
  // starts no round, and history holds exactly the events made here.
  service = await startInProcess({ STATUS_INTERVAL_MS: '60000', HISTORY_SIZE: '5', HEARTBEAT_MS: '0' });
  const observer = await openStream(`${service.url}/events`);
  await observer.waitForEvents(1);
  for (let i = 0; i < 7; i++) await service.poller.round();
  ids = (await observer.waitForEvents(8)).map((e) => e.id!);
  observer.close();
});
after(() => service.close());

const dataIds = (client: SseClient): string[] => client.events.map((e) => e.id!);

async function resumeWith(headers: Record<string, string>, query = ''): Promise<SseClient> {
  const client = await openStream(`${service.url}/events${query}`, headers);
  // Replayed events are written at once, before any new round can end.
  await sleep(50);
  client.close();
  return client;
}

function lastIdsInHistory(): string[] {
  return ids.slice(-5);
}

test('replays every later event in order after a Last-Event-ID header, not the named one', async () => {
  const history = lastIdsInHistory();
  const client = await resumeWith({ 'Last-Event-ID': history[1] });
  assert.deepEqual(dataIds(client), history.slice(2));
});

test('replays after ?lastEventId= too, for clients that cannot set headers', async () => {
  const history = lastIdsInHistory();
  const client = await resumeWith({}, `?lastEventId=${encodeURIComponent(history[0])}`);
  assert.deepEqual(dataIds(client), history.slice(1));
});

test('prefers the header to the query parameter, which holds the older id on a reconnect', async () => {
  const history = lastIdsInHistory();
  const client = await resumeWith({ 'Last-Event-ID': history[3] }, `?lastEventId=${encodeURIComponent(history[0])}`);
  assert.deepEqual(dataIds(client), history.slice(4));
});

test('sends nothing more than the live stream to a client that has the latest event', async () => {
  const history = lastIdsInHistory();
  const client = await resumeWith({ 'Last-Event-ID': history[4] });
  assert.deepEqual(dataIds(client), []);
  assert.deepEqual(client.blocks.map((b) => b.retry), [3000]);
});

test('gives unknown, foreign, malformed, evicted, empty and over-long ids the latest snapshot only', async () => {
  const [, seq] = ids[0].split('-');
  const unknownIds = [
    `${'0'.repeat(16)}-${seq}`, // another process
    ids[0], // evicted from the five-event history
    `${service.hub.bootId}-999999`, // not published yet
    `${service.hub.bootId}-01`, `${service.hub.bootId}-x`, `${service.hub.bootId}`, '-', 'garbage', ' ',
    `${service.hub.bootId}-${'9'.repeat(100)}`, 'é✓\u0000',
  ];
  for (const id of unknownIds) {
    const client = await resumeWith({}, `?lastEventId=${encodeURIComponent(id)}`);
    assert.deepEqual(dataIds(client), [ids[7]], JSON.stringify(id));
  }
  const huge = await resumeWith({ 'Last-Event-ID': 'x'.repeat(8000) });
  assert.deepEqual(dataIds(huge), [ids[7]]);
});
