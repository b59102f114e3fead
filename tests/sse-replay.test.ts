// Replay: the replay buffer's ids and lookups, collapsed replays, `event: reset` past 1 MiB,
// and a replay larger than MAX_BUFFERED_BYTES that never gets its resumer dropped as slow.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import { type SseEvent as ParsedEvent, ResponseParser, SseParser } from '../bench/sse-parser.ts';
import { ReplayBuffer, SNAPSHOT_TYPE } from '../replay.ts';
import { MAX_REPLAY_BYTES } from '../sse.ts';
import { openStream, type SseClient, sleep, startHubServer, startInProcess, waitFor, withDeadline } from './helpers.ts';

const frame = (text: string) => (id: string) => Buffer.from(`${id} ${text}`);

test('gives events the ids <boot id>-<sequence>, counting from 1, unique per buffer', () => {
  const buffer = new ReplayBuffer(4);
  assert.match(buffer.bootId, /^[0-9a-f]{16}$/);
  assert.notEqual(new ReplayBuffer(4).bootId, buffer.bootId);
  const first = buffer.record(SNAPSHOT_TYPE, frame('a'));
  const second = buffer.record('deploy', frame('b'));
  assert.deepEqual([first.seq, second.seq, buffer.lastSeq], [1, 2, 2]);
  assert.equal(second.frame.toString(), `${buffer.bootId}-2 b`, 'the frame is built with its own id');
  assert.equal(new ReplayBuffer(1, 'boot').idOf(7), 'boot-7');
});

test('keeps the last `capacity` events and replays from any of them, or from the one just before', () => {
  const buffer = new ReplayBuffer(3, 'b');
  for (const type of ['message', 'deploy', 'message', 'change', 'message']) buffer.record(type, frame(type));
  assert.equal(buffer.size, 3);
  // Held: 3, 4, 5. A client with 2 misses exactly those.
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((seq) => buffer.seqOf(`b-${seq}`)),
    [null, 2, 3, 4, 5, null],
  );
  const replay = buffer.collapsedAfter('b-2', null);
  assert.deepEqual(
    replay?.entries.map((e) => [e.seq, e.type]),
    [
      [4, 'change'],
      [5, 'message'],
    ],
  );
  assert.equal(
    replay?.bytes,
    replay?.entries.reduce((n, e) => n + e.frame.length, 0),
  );
  assert.deepEqual(buffer.collapsedAfter('b-5', null), { entries: [], bytes: 0 });
  assert.equal(buffer.collapsedAfter('b-1', null), null);
});

test('collapses to the newest snapshot and every named event in id order, filtered by type', () => {
  const buffer = new ReplayBuffer(10, 'b');
  const types = ['message', 'deploy', 'message', 'change', 'message', 'deploy'];
  for (const type of types) buffer.record(type, frame(type));
  const seqs = (filter: ReadonlySet<string> | null) => buffer.collapsedAfter('b-1', filter)?.entries.map((e) => e.seq);
  assert.deepEqual(seqs(null), [2, 4, 5, 6]);
  assert.deepEqual(seqs(new Set(['message'])), [5]);
  assert.deepEqual(seqs(new Set(['deploy', 'change'])), [2, 4, 6]);
  assert.deepEqual(seqs(new Set(['other'])), []);
  // No snapshot after the id: none is sent, whatever the filter.
  assert.deepEqual(
    buffer.collapsedAfter('b-5', null)?.entries.map((e) => e.seq),
    [6],
  );
});

test('keeps the frame of the newest snapshot only, and of every named event', () => {
  const buffer = new ReplayBuffer(10, 'b');
  const big = (text: string) => (id: string) => Buffer.from(`${id} ${text}`.padEnd(1000));
  for (let i = 0; i < 25; i++) buffer.record(i % 5 === 4 ? 'deploy' : SNAPSHOT_TYPE, big(String(i)));
  // Held: 16..25, of which 20 and 25 are named events and 24 the newest snapshot.
  assert.equal(buffer.size, 10);
  assert.equal(buffer.bytes, 3 * 1000, 'two named events and one snapshot keep their frames');
  assert.deepEqual(
    buffer.collapsedAfter('b-15', null)?.entries.map((e) => [e.seq, e.frame.toString().trim()]),
    [
      [20, 'b-20 19'],
      [24, 'b-24 23'],
      [25, 'b-25 24'],
    ],
  );
  // A snapshot evicted from the ring before the next one is recorded is simply gone.
  const small = new ReplayBuffer(2, 'c');
  for (const type of [SNAPSHOT_TYPE, 'deploy', 'deploy', SNAPSHOT_TYPE]) small.record(type, big(type));
  assert.equal(small.bytes, 2000);
  assert.deepEqual(
    small.collapsedAfter('c-2', null)?.entries.map((e) => e.seq),
    [3, 4],
  );
});

test('with capacity 0 it keeps nothing but still knows a client that has the newest event', () => {
  const buffer = new ReplayBuffer(0, 'b');
  buffer.record(SNAPSHOT_TYPE, frame('a'));
  buffer.record(SNAPSHOT_TYPE, frame('b'));
  assert.equal(buffer.size, 0);
  assert.equal(buffer.seqOf('b-1'), null);
  assert.deepEqual(buffer.collapsedAfter('b-2', null), { entries: [], bytes: 0 });
});

test('refuses ids that are not its own and a capacity that is not a non-negative integer', () => {
  const buffer = new ReplayBuffer(5, 'b');
  buffer.record(SNAPSHOT_TYPE, frame('a'));
  for (const id of [
    null,
    '',
    'b',
    'b-',
    'b-0',
    'b-01',
    'b-1.0',
    'b-+1',
    'c-1',
    'xb-1',
    'b-1-1',
    `b-${'1'.repeat(40)}`,
  ]) {
    assert.equal(buffer.seqOf(id), null, JSON.stringify(id));
  }
  for (const bad of [-1, 1.5, Number.NaN]) {
    assert.throws(() => new ReplayBuffer(bad), /replay: capacity must be a non-negative integer, got/);
  }
});

const blockSummary = (client: SseClient): string[] =>
  client.blocks.map((b) => (b.retry !== undefined ? 'retry' : `${b.event ?? 'message'}:${b.data?.slice(0, 40)}`));

test('a collapsed replay over 1 MiB gets event: reset and then the latest snapshot instead', async () => {
  const hubServer = await startHubServer();
  try {
    const { hub } = hubServer;
    const from = hub.publishSnapshot('s0');
    const big = 'x'.repeat(100 * 1024);
    for (let i = 0; i < Math.ceil(MAX_REPLAY_BYTES / big.length) + 1; i++) hub.publishEvent('deploy', big);
    hub.publishSnapshot('s1');
    const resumer = await openStream(hubServer.url, { 'Last-Event-ID': from });
    const filtered = await openStream(`${hubServer.url}?events=deploy`, { 'Last-Event-ID': from });
    await resumer.waitForEvents(2);
    await filtered.waitForEvents(1);
    await sleep(50);
    assert.deepEqual(blockSummary(resumer), ['retry', 'reset:{"reason":"replay too large"}', 'message:s1']);
    assert.equal(resumer.events[0].data, '{"reason":"replay too large"}');
    // Without snapshots in its filter: the reset alone.
    assert.deepEqual(blockSummary(filtered), ['retry', 'reset:{"reason":"replay too large"}']);
    assert.equal(hub.stats.resets, 2);
    for (const c of [resumer, filtered]) c.close();
  } finally {
    await hubServer.close();
  }
});

test('a replay larger than MAX_BUFFERED_BYTES is sent whole and survives the broadcasts after it', async () => {
  const MAX_BUFFERED_BYTES = 64 * 1024;
  const big = 'y'.repeat(100 * 1024);
  let publishOnOpen = false;
  const hubServer = await startHubServer({
    maxBufferedBytes: MAX_BUFFERED_BYTES,
    // In the very turn the replay was written, all of it still unsent.
    onOpen: () => {
      if (publishOnOpen) hubServer.hub.publishEvent('deploy', big);
    },
  });
  try {
    const { hub } = hubServer;
    const from = hub.publishSnapshot('s0');
    for (let i = 0; i < 8; i++) hub.publishEvent('deploy', big);
    publishOnOpen = true;
    const resumer = await openStream(hubServer.url, { 'Last-Event-ID': from });
    publishOnOpen = false;
    hub.publishEvent('deploy', big);
    await resumer.waitForEvents(10);
    assert.equal(hub.stats.dropped.slow, 0);
    assert.equal(hub.size, 1);
    assert.ok(resumer.events.every((e) => e.data === big));
    resumer.close();
  } finally {
    await hubServer.close();
  }
});

test('once its replay has drained, a resumer that stops reading is dropped like any other', async () => {
  const hubServer = await startHubServer({ maxBufferedBytes: 64 * 1024, replaySize: 20 });
  const socket = net.connect(hubServer.port, '127.0.0.1');
  socket.on('error', () => {});
  try {
    const { hub } = hubServer;
    const from = hub.publishSnapshot('s0');
    const big = 'z'.repeat(100 * 1024);
    for (let i = 0; i < 5; i++) hub.publishEvent('deploy', big);
    const events: ParsedEvent[] = [];
    const sse = new SseParser((e) => events.push(e));
    const response = new ResponseParser(
      () => {},
      (bytes) => sse.feed(bytes),
      () => {},
    );
    socket.on('data', (bytes: Buffer) => response.feed(bytes));
    socket.write(`GET / HTTP/1.1\r\nHost: x\r\nLast-Event-ID: ${from}\r\n\r\n`);
    await waitFor(() => events.length === 5, 10_000, 'the whole replay');
    socket.pause();
    const megabyte = 'm'.repeat(1 << 20);
    for (let i = 0; i < 100 && hub.stats.dropped.slow === 0; i++) {
      hub.publishSnapshot(megabyte);
      await sleep(5);
    }
    assert.equal(hub.stats.dropped.slow, 1);
  } finally {
    socket.destroy();
    await hubServer.close();
  }
});

test('the eventsource client resuming across many snapshots over MAX_BUFFERED_BYTES gets events', async () => {
  const service = await startInProcess({
    STATUS_INTERVAL_MS: '60000',
    HEARTBEAT_MS: '0',
    MAX_BUFFERED_BYTES: '65536',
    HISTORY_SIZE: '100',
    LOG_LEVEL: 'error',
  });
  let source: EventSource | undefined;
  try {
    const observer = await openStream(`${service.url}/events`);
    const [first] = await observer.waitForEvents(1);
    observer.close();
    await waitFor(() => service.hub.size === 0, 5000, 'the observer to go');
    // Thirty 100 KB snapshots: 3 MB missed, far beyond MAX_BUFFERED_BYTES.
    const snapshot = (n: number): string => JSON.stringify({ n, padding: 'p'.repeat(100 * 1024) });
    for (let n = 1; n <= 30; n++) service.hub.publishSnapshot(snapshot(n));
    const received: number[] = [];
    let errors = 0;
    source = new EventSource(`${service.url}/events?lastEventId=${encodeURIComponent(first.id!)}`);
    source.onmessage = (event) => received.push((JSON.parse(event.data) as { n: number }).n);
    source.onerror = () => errors++;
    await waitFor(() => received.length >= 1, 10_000, 'the collapsed replay');
    service.hub.publishSnapshot(snapshot(31));
    service.hub.publishSnapshot(snapshot(32));
    await withDeadline(
      waitFor(() => received.length >= 3, 10_000, 'two live snapshots'),
      11_000,
      'live snapshots after the replay',
    );
    assert.deepEqual(received, [30, 31, 32]);
    assert.equal(errors, 0);
    assert.equal(service.hub.stats.dropped.slow, 0);
  } finally {
    source?.close();
    await service.close();
  }
});
