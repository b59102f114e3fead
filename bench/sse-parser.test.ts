// The load generator's parser must be right before its numbers mean anything: these
// feed it whole responses split at every byte and at random places.
// Run: node --import tsx --test bench/sse-parser.test.ts

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChunkedDecoder, parseResponseHead, ResponseParser, type SseEvent, SseParser } from './sse-parser.ts';

function chunk(payload: string): string {
  return `${Buffer.byteLength(payload).toString(16)}\r\n${payload}\r\n`;
}

const HEAD =
  'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache, no-transform\r\n' +
  'Transfer-Encoding: chunked\r\n\r\n';

const FRAMES = [
  'retry: 3000\n\n',
  'id: b1-1\ndata: {"time":"2026-11-25T01:23:45.678Z","é":"ü"}\n\n',
  ': heartbeat\n\n',
  'id: b1-2\ndata: line one\ndata: line two\n\n',
  'event: done\ndata: {"reason":"shutdown"}\n\n',
];

const EXPECTED: SseEvent[] = [
  { type: 'message', data: '{"time":"2026-11-25T01:23:45.678Z","é":"ü"}', lastEventId: 'b1-1' },
  { type: 'message', data: 'line one\nline two', lastEventId: 'b1-2' },
  { type: 'done', data: '{"reason":"shutdown"}', lastEventId: 'b1-2' },
];

function runResponse(pieces: Buffer[]): { events: SseEvent[]; ended: boolean; retryMs: number; comments: number } {
  const events: SseEvent[] = [];
  let ended = false;
  const sse = new SseParser((e) => events.push(e));
  const response = new ResponseParser(
    (head) => assert.equal(head.statusCode, 200),
    (bytes) => sse.feed(bytes),
    () => {
      ended = true;
    },
  );
  for (const piece of pieces) response.feed(piece);
  return { events, ended, retryMs: sse.retryMs, comments: sse.comments };
}

const WHOLE = Buffer.from(HEAD + FRAMES.map(chunk).join('') + '0\r\n\r\n');

test('parses a chunked event stream fed in one piece', () => {
  const r = runResponse([WHOLE]);
  assert.deepEqual(r.events, EXPECTED);
  assert.equal(r.ended, true);
  assert.equal(r.retryMs, 3000);
  assert.equal(r.comments, 1);
});

test('parses the same stream split at every single byte, UTF-8 sequences included', () => {
  const pieces: Buffer[] = [];
  for (let i = 0; i < WHOLE.length; i++) pieces.push(WHOLE.subarray(i, i + 1));
  const r = runResponse(pieces);
  assert.deepEqual(r.events, EXPECTED);
  assert.equal(r.ended, true);
});

test('parses the same stream split at random places, with chunk boundaries inside frames', () => {
  // Re-chunk the body so chunk boundaries fall inside lines and UTF-8 sequences.
  const body = Buffer.from(FRAMES.join(''));
  let seed = 7;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let round = 0; round < 200; round++) {
    const parts: Buffer[] = [Buffer.from(HEAD)];
    for (let i = 0; i < body.length; ) {
      const len = 1 + rand(17);
      const piece = body.subarray(i, i + len);
      parts.push(Buffer.from(`${piece.length.toString(16)};ext=1\r\n`), piece, Buffer.from('\r\n'));
      i += len;
    }
    parts.push(Buffer.from('0\r\nX-Trailer: 1\r\n\r\n'));
    const all = Buffer.concat(parts);
    const pieces: Buffer[] = [];
    for (let i = 0; i < all.length; ) {
      const len = 1 + rand(40);
      pieces.push(all.subarray(i, i + len));
      i += len;
    }
    const r = runResponse(pieces);
    assert.deepEqual(r.events, EXPECTED);
    assert.equal(r.ended, true);
  }
});

test('treats CRLF, LF and CR as line ends, also when a CR ends one read and LF starts the next', () => {
  const events: SseEvent[] = [];
  const sse = new SseParser((e) => events.push(e));
  sse.feed(Buffer.from('data: a\r'));
  sse.feed(Buffer.from('\ndata: b\r\r'));
  sse.feed(Buffer.from('data:c\n\nid: x\0y\ndata\n\n'));
  assert.deepEqual(events, [
    { type: 'message', data: 'a\nb', lastEventId: '' },
    { type: 'message', data: 'c', lastEventId: '' },
    { type: 'message', data: '', lastEventId: '' },
  ]);
});

test('ignores a leading byte order mark, unknown fields and a bad retry', () => {
  const events: SseEvent[] = [];
  const sse = new SseParser((e) => events.push(e));
  sse.feed(Buffer.from('\uFEFFretry: 12x\nfoo: bar\nid: 7\n\n'));
  sse.feed(Buffer.from('data:  two spaces\n\n'));
  assert.equal(sse.retryMs, -1);
  assert.deepEqual(events, [{ type: 'message', data: ' two spaces', lastEventId: '7' }]);
});

test('latin1 mode gives the same events and ids, with non-ASCII text as its UTF-8 bytes, at every split', () => {
  const latin1 = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
  const expected = EXPECTED.map((e) => ({ ...e, data: latin1(e.data) }));
  const body = Buffer.from(`\uFEFF${FRAMES.join('')}`);
  for (const size of [1, 2, 3, 5, body.length]) {
    const events: SseEvent[] = [];
    const sse = new SseParser((e) => events.push(e), { latin1: true });
    for (let i = 0; i < body.length; i += size) sse.feed(body.subarray(i, i + size));
    assert.deepEqual(events, expected, `pieces of ${size}`);
    assert.equal(sse.retryMs, 3000);
  }
  // Bytes that only start like a byte order mark are kept.
  const events: SseEvent[] = [];
  const sse = new SseParser((e) => events.push(e), { latin1: true });
  sse.feed(Buffer.from([0xef]));
  sse.feed(Buffer.from('x: 1\ndata: a\n\n'));
  assert.deepEqual(events, [{ type: 'message', data: 'a', lastEventId: '' }]);
});

test('refuses malformed chunk framing', () => {
  const d = new ChunkedDecoder(
    () => {},
    () => {},
  );
  assert.throws(() => d.feed(Buffer.from('zz\r\n')), /bad chunk size/);
  const e = new ChunkedDecoder(
    () => {},
    () => {},
  );
  assert.throws(() => e.feed(Buffer.from('2\r\nabX')), /CRLF/);
});

test('reads the status and whether the body is chunked from the head', () => {
  const head = parseResponseHead('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 10');
  assert.equal(head.statusCode, 503);
  assert.equal(head.chunked, false);
  assert.equal(head.headers['retry-after'], '5');
  assert.throws(() => parseResponseHead('HTTP/2 200'), /bad status line/);
});
