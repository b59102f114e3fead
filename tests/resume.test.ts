// Resume: Last-Event-ID, as a header or ?lastEventId=, gets what the client missed, collapsed
// (the newest snapshot and every named event, in id order), without the named event itself;
// any id that is not ours, or no longer held, gets the latest snapshot only.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type InProcess, openStream, type SseClient, sleep, startInProcess } from './helpers.ts';

let service: InProcess;
/** Every event published, oldest first: s = snapshot, e = named event. */
let published: Array<{ id: string; kind: 's' | 'e' }>;

before(async () => {
  // A long interval: the only rounds are the first ones, and the test publishes the rest, so
  // the replay buffer (six events) holds exactly what is published here.
  service = await startInProcess({ STATUS_INTERVAL_MS: '60000', HISTORY_SIZE: '6', HEARTBEAT_MS: '0' });
  const observer = await openStream(`${service.url}/events`);
  const [first] = await observer.waitForEvents(1);
  observer.close();
  const { hub } = service;
  published = [{ id: first.id!, kind: 's' }];
  // 0 s0, 1 s1, 2 e1, 3 s2, 4 e2, 5 s3, 6 s4, 7 e3: the buffer holds 2-7.
  for (const [n, kind] of (['s', 'e', 's', 'e', 's', 's', 'e'] as const).entries()) {
    const id = kind === 's' ? hub.publishSnapshot(`{"n":${n}}`) : hub.publishEvent('deploy', `{"n":${n}}`);
    published.push({ id, kind });
  }
});
after(() => service.close());

const ids = (indexes: number[]): string[] => indexes.map((i) => published[i].id);
const receivedIds = (client: SseClient): string[] => client.events.map((e) => e.id!);

async function resumeWith(headers: Record<string, string>, query = ''): Promise<SseClient> {
  const client = await openStream(`${service.url}/events${query}`, headers);
  // The first frames are written at once, in the same turn as the response head.
  await sleep(50);
  client.close();
  return client;
}

test('replays the newest later snapshot and every later named event, in id order, not the named one', async () => {
  const client = await resumeWith({ 'Last-Event-ID': published[3].id });
  // After s2: e2, s3, s4, e3 collapse to e2, s4, e3.
  assert.deepEqual(receivedIds(client), ids([4, 6, 7]));
  assert.deepEqual(
    client.events.map((e) => e.event),
    ['deploy', undefined, 'deploy'],
  );
});

test('replays from the event just before the oldest one still held', async () => {
  const client = await resumeWith({ 'Last-Event-ID': published[1].id });
  assert.deepEqual(receivedIds(client), ids([2, 4, 6, 7]));
});

test('replays after ?lastEventId= too, for clients that cannot set headers', async () => {
  const client = await resumeWith({}, `?lastEventId=${encodeURIComponent(published[5].id)}`);
  assert.deepEqual(receivedIds(client), ids([6, 7]));
});

test('prefers the header to the query parameter, which holds the older id on a reconnect', async () => {
  const client = await resumeWith(
    { 'Last-Event-ID': published[6].id },
    `?lastEventId=${encodeURIComponent(published[2].id)}`,
  );
  assert.deepEqual(receivedIds(client), ids([7]));
});

test('sends nothing more than the live stream to a client that has the latest event', async () => {
  const client = await resumeWith({ 'Last-Event-ID': published[7].id });
  assert.deepEqual(receivedIds(client), []);
  assert.deepEqual(
    client.blocks.map((b) => b.retry),
    [3000],
  );
});

test('gives unknown, foreign, malformed, evicted, empty and over-long ids the latest snapshot only', async () => {
  const [, seq] = published[0].id.split('-');
  const bootId = service.hub.bootId;
  const unknownIds = [
    `${'0'.repeat(16)}-${seq}`, // another process
    published[0].id, // evicted: the one after it is no longer held
    `${bootId}-999999`, // not published yet
    `${bootId}-0`,
    `${bootId}-01`,
    `${bootId}-x`,
    `${bootId}-1-1`,
    `${bootId}`,
    '-',
    'garbage',
    ' ',
    `${bootId}-${'9'.repeat(100)}`,
    'é✓\u0000',
  ];
  // The latest snapshot is s4, not e3, the latest event.
  const latestSnapshot = ids([6]);
  for (const id of unknownIds) {
    const client = await resumeWith({}, `?lastEventId=${encodeURIComponent(id)}`);
    assert.deepEqual(receivedIds(client), latestSnapshot, JSON.stringify(id));
  }
  const huge = await resumeWith({ 'Last-Event-ID': 'x'.repeat(8000) });
  assert.deepEqual(receivedIds(huge), latestSnapshot);
});

test('a new stream gets the latest snapshot, not a named event published after it', async () => {
  const client = await resumeWith({});
  assert.deepEqual(receivedIds(client), ids([6]));
  assert.equal(client.events[0].data, '{"n":5}');
});
