// GET /events: the wire format (docs/protocol.md) as real clients see it: headers, first frames,
// ids, one write per frame, heartbeats, and the `eventsource` npm client.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { hostname } from 'node:os';
import { after, before, test } from 'node:test';
import { EventSource } from 'eventsource';
import {
  type InProcess,
  openStream,
  request,
  type SseClient,
  sleep,
  startInProcess,
  waitFor,
  withDeadline,
} from './helpers.ts';

const INTERVAL_MS = 300;
let service: InProcess;

before(async () => {
  service = await startInProcess({ STATUS_INTERVAL_MS: String(INTERVAL_MS), RETRY_MS: '1234', HEARTBEAT_MS: '0' });
});
after(() => service.close());

test('answers with exactly the SSE headers and no length or encoding', async () => {
  const client = await openStream(`${service.url}/events`);
  try {
    assert.equal(client.status, 200);
    assert.equal(client.headers['content-type'], 'text/event-stream');
    assert.equal(client.headers['cache-control'], 'no-cache, no-transform');
    assert.equal(client.headers.connection, 'keep-alive');
    assert.equal(client.headers['x-accel-buffering'], 'no');
    assert.equal(client.headers['content-length'], undefined);
    assert.equal(client.headers['content-encoding'], undefined);
    // Node's own chunking, for HTTP/1.1.
    assert.equal(client.headers['transfer-encoding'], 'chunked');
  } finally {
    client.close();
  }
});

test('sends retry first, then a snapshot as an unnamed event with a boot-id-sequence id', async () => {
  const client = await openStream(`${service.url}/events`);
  try {
    await client.waitForEvents(1);
    assert.deepEqual(client.blocks[0], { retry: 1234, at: client.blocks[0].at });
    assert.ok(client.raw.startsWith('retry: 1234\n\n'));
    const first = client.events[0];
    assert.equal(first.event, undefined);
    assert.match(first.id!, /^[0-9a-f]{16}-[1-9]\d*$/);
    assert.equal(first.id!.split('-')[0], service.hub.bootId);
    const snapshot = JSON.parse(first.data!);
    assert.equal(snapshot.status, 'up');
    assert.deepEqual(snapshot.checks, []);
    assert.ok(Date.parse(snapshot.time) > 0);
    assert.equal(typeof snapshot.host.hostname, 'string');
    assert.equal(snapshot.host.loadavg.length, 3);
    assert.equal(snapshot.service.version, 'test');
    // Built before this stream opened (the latest snapshot comes at once): any count.
    assert.equal(typeof snapshot.service.clients, 'number');
    assert.equal(snapshot.service.title, hostname());
    assert.equal(snapshot.service.intervalMs, INTERVAL_MS);
    assert.equal(snapshot.announcement, null);
    assert.ok(snapshot.service.rssBytes > 0);
    assert.equal(typeof snapshot.service.eventLoopDelayMs, 'number');
  } finally {
    client.close();
  }
});

test('sends a new snapshot every interval, with strictly increasing sequence numbers', async () => {
  const client = await openStream(`${service.url}/events`);
  try {
    const events = await client.waitForEvents(4, 20 * INTERVAL_MS);
    const seqs = events.map((e) => Number(e.id!.split('-')[1]));
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1);
    // The first is the latest snapshot, sent at once; the next ones come one interval apart.
    assert.ok(events[3].at - events[1].at >= 2 * INTERVAL_MS - 50, `gaps: ${events.map((e) => e.at - events[0].at)}`);
  } finally {
    client.close();
  }
});

test('a second stream gets the latest snapshot at once, the same bytes the first stream got', async () => {
  const first = await openStream(`${service.url}/events`);
  try {
    const [event] = await first.waitForEvents(1);
    const second = await openStream(`${service.url}/events`);
    try {
      const [again] = await second.waitForEvents(1, INTERVAL_MS);
      // Either the same event (still the latest) or a later one that the first also got.
      const match =
        first.events.find((e) => e.id === again.id) ?? (await first.waitFor((e) => e.id === again.id, 1, 5000))[0];
      assert.equal(match.data, again.data);
      assert.ok(event.id);
    } finally {
      second.close();
    }
  } finally {
    first.close();
  }
});

test('writes each frame with exactly one write() call', async () => {
  // A frame goes out either through ServerResponse.write() (the first frames, heartbeats,
  // shutdown), which Node chunk-encodes, or, in a broadcast, as one write() to the socket
  // of the event already encoded as one HTTP chunk. Writes Node itself makes to the socket
  // inside ServerResponse.write() are its pieces of that one call, not ours.
  const originalRes = http.ServerResponse.prototype.write;
  const originalSocket = net.Socket.prototype.write;
  const frames: string[] = [];
  const socketWrites: { port: number | undefined; bytes: string }[] = [];
  let insideResponseWrite = 0;
  http.ServerResponse.prototype.write = function (this: http.ServerResponse, chunk: unknown, ...rest: unknown[]) {
    if (this.req.url === '/events') frames.push(String(chunk));
    insideResponseWrite++;
    try {
      return (originalRes as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } finally {
      insideResponseWrite--;
    }
  } as typeof originalRes;
  net.Socket.prototype.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]) {
    if (insideResponseWrite === 0) socketWrites.push({ port: this.remotePort, bytes: String(chunk) });
    return (originalSocket as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof originalSocket;
  let localPort: number | undefined;
  try {
    const client = await openStream(`${service.url}/events`);
    localPort = client.req.socket!.localPort;
    await client.waitForEvents(4, 20 * INTERVAL_MS);
    client.close();
  } finally {
    http.ServerResponse.prototype.write = originalRes;
    net.Socket.prototype.write = originalSocket;
  }
  const broadcasts = socketWrites.filter((w) => w.port === localPort).map((w) => w.bytes);
  assert.ok(broadcasts.length >= 2, `direct socket writes: ${broadcasts.length}`);
  for (const bytes of broadcasts) {
    // One whole chunk: size in hex, CRLF, exactly that many bytes, CRLF, and nothing else.
    const m = /^([0-9a-f]+)\r\n/.exec(bytes);
    assert.ok(m, JSON.stringify(bytes));
    const payload = bytes.slice(m[0].length, bytes.length - 2);
    assert.equal(Buffer.byteLength(payload), parseInt(m[1] as string, 16), JSON.stringify(bytes));
    assert.ok(bytes.endsWith('\r\n'), JSON.stringify(bytes));
    frames.push(payload);
  }
  assert.ok(frames.length >= 5, `frames: ${frames.length}`);
  for (const frame of frames) {
    // A whole frame per write: it ends with the blank line and holds no other blank line.
    assert.ok(frame.endsWith('\n\n'), JSON.stringify(frame));
    assert.equal(frame.indexOf('\n\n'), frame.length - 2, JSON.stringify(frame));
  }
});

test('turns Nagle off on the stream socket', async () => {
  const original = net.Socket.prototype.setNoDelay;
  const noDelayPorts = new Set<number | undefined>();
  net.Socket.prototype.setNoDelay = function (this: net.Socket, noDelay?: boolean) {
    if (noDelay !== false) noDelayPorts.add(this.remotePort);
    return original.call(this, noDelay);
  };
  let client: SseClient;
  try {
    client = await openStream(`${service.url}/events`);
    await client.waitForEvents(1);
  } finally {
    net.Socket.prototype.setNoDelay = original;
  }
  const localPort = client.req.socket!.localPort;
  client.close();
  // The server side of this stream's connection is the socket whose peer is our local port.
  assert.ok(noDelayPorts.has(localPort), `setNoDelay(true) seen for peers ${[...noDelayPorts]}, not ${localPort}`);
});

test('HEAD /events answers the stream headers and opens no stream', async () => {
  const before = service.hub.stats.connectionsTotal;
  const reply = await request(`${service.url}/events`, { method: 'HEAD' });
  assert.equal(reply.status, 200);
  assert.equal(reply.headers['content-type'], 'text/event-stream');
  assert.equal(reply.body, '');
  assert.equal(service.hub.stats.connectionsTotal, before);
});

test('the eventsource client receives snapshots in onmessage', async () => {
  const source = new EventSource(`${service.url}/events`);
  try {
    const messages: MessageEvent[] = [];
    await withDeadline(
      new Promise<void>((resolve, reject) => {
        source.onmessage = (event) => {
          messages.push(event);
          if (messages.length === 2) resolve();
        };
        source.onerror = (event) => reject(new Error(`eventsource error: ${JSON.stringify(event)}`));
      }),
      20 * INTERVAL_MS,
      'two messages in onmessage',
    );
    assert.equal(JSON.parse(messages[0].data).status, 'up');
    assert.match(messages[1].lastEventId, /^[0-9a-f]{16}-\d+$/);
    assert.notEqual(messages[0].lastEventId, messages[1].lastEventId);
  } finally {
    source.close();
  }
});

test('closing the client unsubscribes its stream at once', async () => {
  const client = await openStream(`${service.url}/events`);
  await client.waitForEvents(1);
  await waitFor(() => service.hub.size >= 1, 2000, 'stream registered');
  const open = service.hub.size;
  client.close();
  await waitFor(() => service.hub.size === open - 1, 2000, 'stream removed');
});

test('snapshots go on with no stream open, one per interval', async () => {
  await waitFor(() => service.hub.size === 0, 2000, 'no streams');
  const rounds = service.poller.rounds;
  await sleep(4 * INTERVAL_MS);
  assert.ok(
    service.poller.rounds - rounds >= 2,
    `snapshots in 4 intervals with no stream: ${service.poller.rounds - rounds}`,
  );
  const client = await openStream(`${service.url}/events`);
  // The latest snapshot at once, without waiting for the next.
  await client.waitForEvents(1, INTERVAL_MS);
  client.close();
});

/** A raw connection that sends `requests` at once and collects every byte it gets. */
async function rawConnection(
  requests: string,
): Promise<{ text: () => string; close: () => void; halfClose: () => void }> {
  const socket = net.connect(service.port, '127.0.0.1');
  await withDeadline(new Promise((resolve) => socket.once('connect', resolve)), 5000, 'connect');
  let received = '';
  socket.setEncoding('utf8').on('data', (text: string) => (received += text));
  socket.write(requests);
  return { text: () => received, close: () => socket.destroy(), halfClose: () => socket.end() };
}

test('an HTTP/1.0 client gets the frames unchunked, broadcasts included', async () => {
  // Node does not chunk a response to HTTP/1.0 (its body ends with the connection), so a
  // broadcast must not send it the chunk-encoded copy either.
  const conn = await rawConnection('GET /events HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n');
  try {
    await waitFor(() => (conn.text().match(/^id: /gm) ?? []).length >= 3, 20 * INTERVAL_MS, 'three events');
    const text = conn.text();
    const [head = '', body = ''] =
      text.split('\r\n\r\n', 2).length === 2
        ? [text.slice(0, text.indexOf('\r\n\r\n')), text.slice(text.indexOf('\r\n\r\n') + 4)]
        : [];
    assert.match(head, /^HTTP\/1\.1 200 /);
    assert.doesNotMatch(head, /transfer-encoding/i);
    assert.doesNotMatch(body, /\r/, 'no chunk framing in the body');
    const frames = body.split('\n\n').filter((f) => f !== '');
    assert.match(frames[0] ?? '', /^retry: 1234$/);
    for (const frame of frames.slice(1)) assert.match(frame, /^id: [0-9a-f]{16}-\d+\ndata: \{.*\}$/);
  } finally {
    conn.close();
  }
});

test('a stream pipelined behind another on one connection is never registered or written', async () => {
  // The second response has no socket while the first never ends: it can never be
  // answered, so it holds no slot and nothing of it reaches the wire.
  // The streams of earlier tests are gone once their 'close' has been handled.
  await waitFor(() => service.hub.size === 0, 5000, 'no stream open');
  const request = 'GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
  const conn = await rawConnection(request + request);
  try {
    await waitFor(() => service.hub.stats.queued >= 1, 5000, 'the second request seen');
    assert.equal(service.hub.size, 1, 'one stream registered');
    await waitFor(() => (conn.text().match(/\nid: /g) ?? []).length >= 3, 20 * INTERVAL_MS, 'three events');
    const text = conn.text();
    assert.equal(text.match(/^HTTP\/1\.1 200 /gm)?.length, 1, 'one response head on the wire');
    // The body is a well-formed chunked stream: every chunk is exactly its announced size.
    let body = text.slice(text.indexOf('\r\n\r\n') + 4);
    let chunks = 0;
    while (body.length > 0) {
      const m = /^([0-9a-f]+)\r\n/.exec(body);
      assert.ok(m, `a chunk starts at ${JSON.stringify(body.slice(0, 40))}`);
      const size = parseInt(m[1] as string, 16);
      const end = m[0].length + size;
      if (body.length < end + 2) break; // the last chunk may still be arriving
      assert.equal(body.slice(end, end + 2), '\r\n');
      assert.ok(body.slice(m[0].length, end).endsWith('\n\n'));
      body = body.slice(end + 2);
      chunks++;
    }
    assert.ok(chunks >= 4, `chunks: ${chunks}`);
  } finally {
    conn.close();
  }
  await waitFor(() => service.hub.size === 0, 5000, 'the stream unregistered when the connection closes');
});

test('a client that half-closes its connection is unsubscribed, and broadcasts go on', async () => {
  await waitFor(() => service.hub.size === 0, 5000, 'no stream open');
  const conn = await rawConnection('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  const other = await openStream(`${service.url}/events`);
  try {
    await waitFor(() => /\nid: /.test(conn.text()), 20 * INTERVAL_MS, 'a first event');
    conn.halfClose();
    await waitFor(() => service.hub.size === 1, 5000, 'the half-closed stream unsubscribed');
    const seen = other.events.length;
    await other.waitForEvents(seen + 2, 20 * INTERVAL_MS);
    assert.equal((await request(`${service.url}/healthz`)).status, 200);
  } finally {
    conn.close();
    other.close();
  }
});
