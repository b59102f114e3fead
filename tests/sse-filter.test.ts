// Stream filters: ?events=message,change,deploy sends a stream only those event types
// (`message` = snapshots), decided at broadcast time with one shared Buffer for every stream;
// retry still comes first, the latest snapshot only when `message` passes, replays filtered alike.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { MAX_FILTER_NAMES, parseEventFilter, SHARED_FILTERS_MAX, SseError } from '../sse.ts';
import { openStream, request, type SseClient, sleep, startHubServer, startInProcess, waitFor } from './helpers.ts';

test('parses a filter into a set of names; null or empty means every event', () => {
  assert.equal(parseEventFilter(null), null);
  assert.equal(parseEventFilter(''), null);
  assert.deepEqual(parseEventFilter('message,change,deploy.v2'), new Set(['message', 'change', 'deploy.v2']));
  assert.deepEqual(parseEventFilter('change,change'), new Set(['change']));
  const longest = Array.from({ length: MAX_FILTER_NAMES }, (_, i) => `e${i}`).join(',');
  assert.equal(parseEventFilter(longest)?.size, MAX_FILTER_NAMES);
});

test('streams asking for the same filter share one Set, from a bounded table', () => {
  const value = 'message,change';
  const first = parseEventFilter(value);
  assert.equal(parseEventFilter(['message', 'change'].join(',')), first, 'the same value gives the same Set');
  assert.notEqual(parseEventFilter('message'), first);
  for (let i = 0; i < SHARED_FILTERS_MAX; i++) parseEventFilter(`other${i}`);
  const again = parseEventFilter(value);
  assert.notEqual(again, first, 'the table starts over once full');
  assert.deepEqual(again, first);
  assert.equal(parseEventFilter(value), again);
});

test('refuses a filter with a name no event can have, or too many names, saying what was given', () => {
  for (const bad of [',', 'message,', 'a b', '1x', 'x'.repeat(65), 'message;change']) {
    assert.throws(() => parseEventFilter(bad), SseError, JSON.stringify(bad));
  }
  assert.throws(() => parseEventFilter('ok,n%t'), /events must be comma-separated names .*, got "n%t"/);
  const tooMany = Array.from({ length: MAX_FILTER_NAMES + 1 }, (_, i) => `e${i}`).join(',');
  assert.throws(() => parseEventFilter(tooMany), /at most 32 names, got 33/);
});

/** What a client got, as `type:data` strings (retry as `retry`). */
const received = (client: SseClient): string[] =>
  client.blocks.map((b) => (b.retry !== undefined ? 'retry' : `${b.event ?? 'message'}:${b.data}`));

test('a filtered stream gets only its types: retry first, the latest snapshot only with message', async () => {
  const hubServer = await startHubServer();
  try {
    hubServer.hub.publishSnapshot('s0');
    const open = (events: string | null): Promise<SseClient> =>
      openStream(events === null ? hubServer.url : `${hubServer.url}?events=${events}`);
    const all = await open(null);
    const snapshots = await open('message');
    const deploys = await open('deploy');
    const changesAndDeploys = await open('change,deploy');
    const nothingSent = await open('other');
    const { hub } = hubServer;
    hub.publishEvent('change', 'c1');
    hub.publishSnapshot('s1');
    hub.publishEvent('deploy', 'd1');
    hub.publishEvent('unrelated', 'u1');
    hub.publishSnapshot('s2');
    await all.waitForEvents(6);
    await snapshots.waitForEvents(3);
    await deploys.waitForEvents(1);
    await changesAndDeploys.waitForEvents(2);
    await sleep(100);
    assert.deepEqual(received(all), [
      'retry',
      'message:s0',
      'change:c1',
      'message:s1',
      'deploy:d1',
      'unrelated:u1',
      'message:s2',
    ]);
    assert.deepEqual(received(snapshots), ['retry', 'message:s0', 'message:s1', 'message:s2']);
    assert.deepEqual(received(deploys), ['retry', 'deploy:d1']);
    assert.deepEqual(received(changesAndDeploys), ['retry', 'change:c1', 'deploy:d1']);
    assert.deepEqual(received(nothingSent), ['retry']);
    for (const c of [all, snapshots, deploys, changesAndDeploys, nothingSent]) c.close();
  } finally {
    await hubServer.close();
  }
});

test('a broadcast writes one shared Buffer to the streams its filter passes, nothing to others', async () => {
  const hubServer = await startHubServer();
  try {
    const wanting = await Promise.all(
      ['deploy', 'message,deploy', null].map((f) =>
        openStream(f === null ? hubServer.url : `${hubServer.url}?events=${f}`),
      ),
    );
    const excluded = await Promise.all(['message', 'change'].map((f) => openStream(`${hubServer.url}?events=${f}`)));
    await waitFor(() => hubServer.hub.size === 5, 5000, 'five streams');
    // The opening frames have left; from here a broadcast writes to the sockets directly.
    await sleep(50);
    const original = net.Socket.prototype.write;
    const writes: Array<{ peer: number | undefined; chunk: unknown }> = [];
    net.Socket.prototype.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]) {
      writes.push({ peer: this.remotePort, chunk });
      return (original as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof original;
    try {
      hubServer.hub.publishEvent('deploy', '{"version":"2"}');
    } finally {
      net.Socket.prototype.write = original;
    }
    assert.equal(writes.length, 3, 'one write per stream that wants it');
    assert.ok(Buffer.isBuffer(writes[0].chunk));
    for (const w of writes) assert.equal(w.chunk, writes[0].chunk, 'the very same Buffer object');
    const peers = new Set(writes.map((w) => w.peer));
    for (const c of wanting) assert.ok(peers.has(c.req.socket!.localPort));
    for (const c of excluded) assert.ok(!peers.has(c.req.socket!.localPort));
    await Promise.all(wanting.map((c) => c.waitForEvents(1)));
    for (const c of [...wanting, ...excluded]) c.close();
  } finally {
    await hubServer.close();
  }
});

test('a resume with a filter replays only the types it asked for, still collapsed', async () => {
  const hubServer = await startHubServer();
  try {
    const { hub } = hubServer;
    const from = hub.publishSnapshot('s0');
    hub.publishEvent('deploy', 'd1');
    hub.publishEvent('change', 'c1');
    hub.publishSnapshot('s1');
    hub.publishEvent('deploy', 'd2');
    hub.publishSnapshot('s2');
    const resume = async (events: string): Promise<string[]> => {
      const client = await openStream(`${hubServer.url}?events=${events}&lastEventId=${from}`);
      await sleep(50);
      client.close();
      return received(client);
    };
    assert.deepEqual(await resume('deploy'), ['retry', 'deploy:d1', 'deploy:d2']);
    assert.deepEqual(await resume('message,change'), ['retry', 'change:c1', 'message:s2']);
    assert.deepEqual(await resume('other'), ['retry']);
  } finally {
    await hubServer.close();
  }
});

test('a bad filter is refused before any stream opens', async () => {
  const hubServer = await startHubServer();
  try {
    const reply = await request(`${hubServer.url}?events=a%20b`);
    assert.equal(reply.status, 400);
    assert.match(reply.body, /^sse: events must be/);
    assert.equal(hubServer.hub.stats.connectionsTotal, 0);
  } finally {
    await hubServer.close();
  }
});

test('the service applies ?events= to GET /events and answers a bad filter with 400', async () => {
  const service = await startInProcess({ STATUS_INTERVAL_MS: '60000', HEARTBEAT_MS: '0' });
  try {
    const all = await openStream(`${service.url}/events`);
    await all.waitForEvents(1);
    const changes = await openStream(`${service.url}/events?events=change`);
    service.hub.publishSnapshot('{"n":1}');
    service.hub.publishEvent('change', '{"c":1}');
    await all.waitForEvents(3);
    await changes.waitForEvents(1);
    await sleep(50);
    assert.deepEqual(received(changes), ['retry', 'change:{"c":1}']);
    const bad = await request(`${service.url}/events?events=a%20b`);
    assert.equal(bad.status, 400);
    assert.match(bad.body, /events must be comma-separated names/);
    for (const c of [all, changes]) c.close();
  } finally {
    await service.close();
  }
});
