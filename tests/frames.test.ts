// The general frame writer of sse.ts: any data is framed safely, and no id or event
// name can break out of its line.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeChunk, formatComment, formatFrame, SseError } from '../sse.ts';

test('formats an unnamed event with an id and one data line', () => {
  assert.equal(formatFrame({ id: 'abc-1', data: '{"a":1}' }), 'id: abc-1\ndata: {"a":1}\n\n');
});

test('writes the fields in the order retry, id, event, data', () => {
  assert.equal(
    formatFrame({ data: 'x', event: 'done', id: '7', retry: 1500 }),
    'retry: 1500\nid: 7\nevent: done\ndata: x\n\n',
  );
});

test('splits data on LF, CRLF and lone CR into one data line each', () => {
  assert.equal(formatFrame({ data: 'a\nb\r\nc\rd' }), 'data: a\ndata: b\ndata: c\ndata: d\n\n');
});

test('keeps empty lines of data, including a trailing one, as empty data lines', () => {
  assert.equal(formatFrame({ data: '' }), 'data: \n\n');
  assert.equal(formatFrame({ data: 'a\n\nb\n' }), 'data: a\ndata: \ndata: b\ndata: \n\n');
});

test('passes non-ASCII and a leading space through untouched', () => {
  // The parser strips exactly one space after the colon; ours is the one it strips.
  assert.equal(formatFrame({ data: ' ünïcödé ✓' }), 'data:  ünïcödé ✓\n\n');
});

test('refuses an id or event containing CR, LF or NUL', () => {
  for (const bad of ['a\nb', 'a\rb', 'a\r\nb', 'a\0b', '\n']) {
    assert.throws(() => formatFrame({ id: bad, data: 'x' }), SseError);
    assert.throws(() => formatFrame({ event: bad, data: 'x' }), SseError);
  }
  assert.throws(
    () => formatFrame({ id: 'x\ndata: injected' }),
    /id must not contain CR, LF or NUL, got "x\\ndata: injected"/,
  );
});

test('refuses a retry that is not a non-negative integer', () => {
  for (const bad of [-1, 1.5, Number.NaN, Infinity])
    assert.throws(() => formatFrame({ retry: bad }), /retry must be a non-negative integer/);
  assert.equal(formatFrame({ retry: 0 }), 'retry: 0\n\n');
});

test('refuses an empty frame', () => {
  assert.throws(() => formatFrame({}), /at least one of/);
});

test('formats a comment and refuses one with a line break', () => {
  assert.equal(formatComment('heartbeat'), ': heartbeat\n\n');
  assert.throws(() => formatComment('a\nb'), SseError);
});

test('encodes a frame as one HTTP/1.1 chunk: size in hex, CRLF, the bytes, CRLF', () => {
  const frame = Buffer.from(formatFrame({ id: 'b-1', data: 'ünï' }));
  assert.equal(encodeChunk(frame).toString(), `${frame.length.toString(16)}\r\nid: b-1\ndata: ünï\n\n\r\n`);
  assert.equal(encodeChunk(Buffer.alloc(300, 'x')).subarray(0, 5).toString(), '12c\r\n');
});
