// sse.ts: the Server-Sent Events protocol. It formats frames, writes each frame with one
// write(), keeps the registry of open streams, replays history for Last-Event-ID, sends
// heartbeats, drops slow readers and ends every stream at shutdown.
// It knows no routes and no status semantics: it is given strings and sends them.
//
// The wire format is the WHATWG HTML Standard, "Server-sent events":
// https://html.spec.whatwg.org/multipage/server-sent-events.html

import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';

/** Thrown for a frame that cannot be written safely; the message says what was given. */
export class SseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SseError';
  }
}

export interface Frame {
  readonly id?: string;
  readonly event?: string;
  readonly data?: string;
  /** Reconnection time in ms, a non-negative integer. */
  readonly retry?: number;
}

// eslint-disable-next-line no-control-regex
const LINE_BREAK_OR_NUL = /[\r\n\x00]/;
// The spec's three line endings: "lines must be separated by either a U+000D CARRIAGE RETURN
// U+000A LINE FEED (CRLF) character pair, a single U+000A LINE FEED (LF) character, or a
// single U+000D CARRIAGE RETURN (CR) character" (§9.2.5 Parsing an event stream).
const LINE_ENDING = /\r\n|\r|\n/;

/**
 * Formats one event block, ending with the blank line that dispatches it.
 * `data` may hold any line endings: each line becomes its own `data:` line, which the
 * client joins back with LF. `id` and `event` may not hold CR, LF or NUL: a line break
 * would let the value inject fields, and an id with NUL is ignored by clients (§9.2.6,
 * "If the field value does not contain U+0000 NULL, then set the last event ID buffer").
 */
export function formatFrame(frame: Frame): string {
  let out = '';
  if (frame.retry !== undefined) {
    if (!Number.isSafeInteger(frame.retry) || frame.retry < 0) {
      throw new SseError(`sse: retry must be a non-negative integer, got ${String(frame.retry)}`);
    }
    out += `retry: ${frame.retry}\n`;
  }
  if (frame.id !== undefined) out += `id: ${singleLine('id', frame.id)}\n`;
  if (frame.event !== undefined) out += `event: ${singleLine('event', frame.event)}\n`;
  if (frame.data !== undefined) {
    for (const line of frame.data.split(LINE_ENDING)) out += `data: ${line}\n`;
  }
  if (out === '') throw new SseError('sse: a frame needs at least one of id, event, data, retry');
  return out + '\n';
}

/** A comment line, which clients ignore: keeps proxies and the socket from idling out. */
export function formatComment(text: string): string {
  return `: ${singleLine('comment', text)}\n\n`;
}

function singleLine(field: string, value: string): string {
  if (LINE_BREAK_OR_NUL.test(value)) {
    throw new SseError(`sse: ${field} must not contain CR, LF or NUL, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Response headers of a stream (SPEC §4).
 * - Content-Type exactly `text/event-stream`: the stream is always UTF-8 (§9.2.5), and a
 *   charset parameter makes some proxies buffer.
 * - `no-transform` forbids intermediaries to compress or re-chunk (RFC 9111 §5.2.2.6).
 * - `X-Accel-Buffering: no` turns Nginx's proxy buffering off for this response
 *   (ngx_http_proxy_module, proxy_buffering), whatever the proxy's config says.
 * No Content-Length and no Transfer-Encoding: Node chunks the body itself.
 */
export const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-cache, no-transform',
  'Connection': 'keep-alive',
  'X-Accel-Buffering': 'no',
});

const HEARTBEAT = Buffer.from(formatComment('heartbeat'));
const CRLF = Buffer.from('\r\n');
const DONE = Buffer.from(formatFrame({ event: 'done', data: '{"reason":"shutdown"}' }));
// An id is "<boot id>-<sequence>": 16 hex + "-" + at most 16 digits. Anything longer is not ours.
const MAX_EVENT_ID_LENGTH = 40;
// A broadcast writes to this many streams per macrotask (see #runBroadcast). 500 writes
// take about 8 ms here and leave well under 1 MiB of short-lived garbage.
const BROADCAST_SLICE = 500;

/** `frame` as one chunk of HTTP/1.1's chunked transfer coding (RFC 9112 §7.1): size in hex, CRLF, the bytes, CRLF. */
export function encodeChunk(frame: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${frame.length.toString(16)}\r\n`, 'latin1'), frame, CRLF]);
}

export type CloseReason = 'client' | 'slow' | 'shutdown';

interface Broadcast {
  readonly seq: number;
  readonly frame: Buffer;
  /** The same frame as one HTTP/1.1 chunk: what a chunked response puts on the wire for it. */
  readonly chunk: Buffer;
  readonly streams: SetIterator<SseStream>;
}

/** One open stream. Deliberately small: 10,000 of these are held at once. */
export class SseStream {
  readonly res: ServerResponse;
  /** Date.now() of the last frame written; the shared heartbeat sweep reads it. */
  lastWriteMs = 0;
  /** The sequence number of the last event written to it, so a broadcast never repeats one. */
  lastSeq = 0;
  /** Why the server closed it; stays 'client' when the client went away. */
  closeReason: CloseReason = 'client';
  constructor(res: ServerResponse) {
    this.res = res;
  }
}

export interface HubOptions {
  readonly retryMs: number;
  /** 0 = no heartbeats. */
  readonly heartbeatMs: number;
  readonly historySize: number;
  readonly maxClients: number;
  readonly maxBufferedBytes: number;
  /** Streams written per turn of the event loop in a broadcast; BROADCAST_SLICE by default. */
  readonly broadcastSlice?: number;
  /** Called after a stream is registered and its first frames are written. */
  readonly onOpen?: (stream: SseStream) => void;
  /** Called once per stream, after it is unregistered. */
  readonly onClose?: (stream: SseStream) => void;
}

export interface HubStats {
  connectionsTotal: number;
  eventsSent: number;
  bytesSent: number;
  dropped: { slow: number; full: number; shutdown: number };
}

interface HistoryEntry {
  readonly seq: number;
  readonly frame: Buffer;
}

/**
 * The registry of open streams and the broadcaster. An event is formatted and encoded
 * once, and the same Buffer is written to every stream. One shared timer serves the
 * heartbeats of all streams: no timer per client.
 */
export class SseHub {
  /** Unique per process start, so ids from another process or run are never taken as ours. */
  readonly bootId: string = randomBytes(8).toString('hex');
  readonly stats: HubStats = { connectionsTotal: 0, eventsSent: 0, bytesSent: 0, dropped: { slow: 0, full: 0, shutdown: 0 } };
  readonly #options: HubOptions;
  readonly #streams = new Set<SseStream>();
  readonly #retryFrame: Buffer;
  // Oldest first; sequence numbers in it are consecutive, so a lookup is an index.
  readonly #history: HistoryEntry[] = [];
  #latest: Buffer | null = null;
  #broadcast: Broadcast | null = null;
  #seq = 0;
  #heartbeatTimer: NodeJS.Timeout | null = null;

  constructor(options: HubOptions) {
    this.#options = options;
    this.#retryFrame = Buffer.from(formatFrame({ retry: options.retryMs }));
  }

  get size(): number {
    return this.#streams.size;
  }

  get full(): boolean {
    return this.#streams.size >= this.#options.maxClients;
  }

  /**
   * Starts a stream on `res`: headers, `retry:`, then the events after `lastEventId` when
   * history still holds it, else the latest event when `sendLatest`. Returns null, having
   * written nothing, when MAX_CLIENTS streams are open: the caller answers 503.
   */
  open(res: ServerResponse, lastEventId: string | null, sendLatest: boolean): SseStream | null {
    if (this.full) {
      this.stats.dropped.full++;
      return null;
    }
    const stream = new SseStream(res);
    this.#streams.add(stream);
    this.stats.connectionsTotal++;
    // The connection's 'close' rather than the response's: a response queued behind another
    // on a pipelined connection has no socket yet, and Node emits no 'close' on it when the
    // connection goes; the connection's 'close' comes for every reason it ends.
    res.req.socket.once('close', () => this.#cleanup(stream));
    // Nagle would hold a small frame back for up to 200 ms waiting for more (RFC 896).
    res.socket?.setNoDelay(true);
    res.writeHead(200, SSE_HEADERS);
    this.#write(stream, this.#retryFrame, Date.now());
    const replay = this.#eventsAfter(lastEventId);
    if (replay !== null) {
      for (const entry of replay) this.#writeEvent(stream, entry.frame);
      // Up to date now, also when it named the newest event: a broadcast of that event
      // still under way must not send it again.
      stream.lastSeq = this.#seq;
    } else if (sendLatest && this.#latest !== null) {
      this.#writeEvent(stream, this.#latest);
      stream.lastSeq = this.#seq;
    }
    if (this.#heartbeatTimer === null) this.#scheduleHeartbeat(this.#options.heartbeatMs);
    this.#options.onOpen?.(stream);
    return stream;
  }

  /** Formats `data` as the next unnamed event, keeps it for replay and sends it to every stream. Returns its id. */
  publish(data: string): string {
    this.#seq++;
    const id = `${this.bootId}-${this.#seq}`;
    const frame = Buffer.from(formatFrame({ id, data }));
    this.#latest = frame;
    if (this.#options.historySize > 0) {
      this.#history.push({ seq: this.#seq, frame });
      if (this.#history.length > this.#options.historySize) this.#history.shift();
    }
    // A broadcast still running finishes first, so every stream gets events in order.
    if (this.#broadcast !== null) this.#runBroadcast(this.#broadcast, Number.POSITIVE_INFINITY);
    this.#broadcast = { seq: this.#seq, frame, chunk: encodeChunk(frame), streams: this.#streams.values() };
    this.#runBroadcast(this.#broadcast, this.#options.broadcastSlice ?? BROADCAST_SLICE);
    return id;
  }

  readonly #continueBroadcast = (): void => {
    if (this.#broadcast !== null) this.#runBroadcast(this.#broadcast, this.#options.broadcastSlice ?? BROADCAST_SLICE);
  };

  // A broadcast goes out in slices of BROADCAST_SLICE streams, one macrotask each. Every
  // write to a socket leaves a little garbage that lives until the nextTick queue drains (Node's
  // afterWriteTick, lib/internal/streams/writable.js): in one loop over 10,000 streams all
  // of it is alive at once, survives the scavenges that run meanwhile and is promoted to the
  // old generation (about 4 MiB a round with a 4 MiB semi-space, `npm run bench`), which
  // then needs mark-compacts. Between slices the queue drains and the garbage dies young.
  // Streams opened during a broadcast are visited too (a Set iterator sees later additions);
  // they already have this event as their latest, which lastSeq tells.
  #runBroadcast(job: Broadcast, limit: number): void {
    const now = Date.now();
    let written = 0;
    let n = 0;
    for (;;) {
      if (n >= limit) {
        this.stats.eventsSent += written;
        setImmediate(this.#continueBroadcast);
        return;
      }
      const next = job.streams.next();
      if (next.done) break;
      n++;
      const stream = next.value;
      // A stream opened during the broadcast got this event as its latest already.
      if (stream.lastSeq >= job.seq) continue;
      stream.lastSeq = job.seq;
      if (this.#writeShared(stream, job, now)) written++;
    }
    this.stats.eventsSent += written;
    this.#broadcast = null;
  }

  /**
   * Shutdown: each stream gets `retry:` with a jitter of up to RETRY_MS, so that the
   * clients of this replica do not all reconnect at the same moment, then `event: done`,
   * and its response ends. The socket is closed after the response: no keep-alive.
   */
  closeAll(): void {
    this.#broadcast = null;
    this.#stopHeartbeats();
    const retryMs = this.#options.retryMs;
    for (const stream of this.#streams) {
      stream.closeReason = 'shutdown';
      this.stats.dropped.shutdown++;
      const jitterMs = Math.floor(Math.random() * (retryMs + 1));
      const now = Date.now();
      this.#write(stream, Buffer.from(formatFrame({ retry: retryMs + jitterMs })), now);
      this.#writeEvent(stream, DONE);
      const socket = stream.res.socket;
      stream.res.end(() => socket?.end());
    }
  }

  /** Writes one frame unless the stream is gone or too far behind, in which case it is dropped. */
  #write(stream: SseStream, frame: Buffer, now: number): boolean {
    if (!this.#keeps(stream)) return false;
    stream.res.write(frame);
    stream.lastWriteMs = now;
    this.stats.bytesSent += frame.length;
    return true;
  }

  /**
   * A broadcast's write: the bytes this event takes on this stream's wire, one Buffer
   * shared by every stream, handed to the socket in one write() that the kernel gets at
   * once. ServerResponse.write() would chunk-encode the frame again for every stream: a
   * hex length string and four pieces per write, gathered by the socket's Writable and
   * encoded by Node's C++ into one writev(). That path made each write cost about 3 µs
   * more and the broadcast to 10,000 streams 30–60 ms longer (README, Performance).
   * Node still decides the framing, at writeHead(): a chunked response (HTTP/1.1) gets the
   * frame as one chunk, encoded once per event; one that Node does not chunk (an HTTP/1.0
   * client or proxy: the body ends with the connection) gets the frame itself. The socket
   * is written directly only while the response holds nothing of its own: its
   * writableLength is its own buffer plus its socket's, so when the two are equal every
   * byte written before is already in the socket, in order. Otherwise, before a socket is
   * assigned, or once it is ended, Node writes the frame (or knows to drop it).
   */
  #writeShared(stream: SseStream, job: Broadcast, now: number): boolean {
    const res = stream.res;
    const socket = res.socket;
    if (socket === null || !socket.writable || res.writableLength !== socket.writableLength) return this.#write(stream, job.frame, now);
    if (!this.#keeps(stream)) return false;
    socket.write(res.chunkedEncoding ? job.chunk : job.frame);
    stream.lastWriteMs = now;
    this.stats.bytesSent += job.frame.length;
    return true;
  }

  /** False when the stream is closed, or too far behind and now dropped. */
  #keeps(stream: SseStream): boolean {
    const res = stream.res;
    if (res.destroyed) return false;
    // writableLength counts what Node holds for this response and its socket: bytes the
    // kernel would not take. Past the limit the reader is not keeping up, and buffering
    // more would let one client grow the server's memory without bound.
    if (res.writableLength > this.#options.maxBufferedBytes) {
      stream.closeReason = 'slow';
      this.stats.dropped.slow++;
      res.destroy();
      return false;
    }
    return true;
  }

  #writeEvent(stream: SseStream, frame: Buffer): void {
    if (this.#write(stream, frame, Date.now())) this.stats.eventsSent++;
  }

  #eventsAfter(lastEventId: string | null): HistoryEntry[] | null {
    // "Clients must not send empty Last-Event-ID" is not a rule servers can rely on: an
    // empty, over-long, foreign or malformed id is simply unknown.
    if (!lastEventId || lastEventId.length > MAX_EVENT_ID_LENGTH) return null;
    const dash = lastEventId.lastIndexOf('-');
    if (lastEventId.slice(0, dash) !== this.bootId) return null;
    const digits = lastEventId.slice(dash + 1);
    if (!/^[1-9]\d{0,15}$/.test(digits)) return null;
    const oldest = this.#history[0];
    if (oldest === undefined) return null;
    const index = Number(digits) - oldest.seq;
    if (index < 0 || index >= this.#history.length) return null;
    return this.#history.slice(index + 1);
  }

  // Heartbeats: one timer for all streams, set for the moment the longest-silent stream
  // reaches HEARTBEAT_MS of silence. Broadcasts write to every stream at once, so in the
  // common case one sweep finds every stream due together, or none.
  #scheduleHeartbeat(delayMs: number): void {
    if (this.#options.heartbeatMs === 0) return;
    this.#heartbeatTimer = setTimeout(this.#sweepHeartbeats, delayMs);
    this.#heartbeatTimer.unref();
  }

  readonly #sweepHeartbeats = (): void => {
    this.#heartbeatTimer = null;
    if (this.#streams.size === 0) return;
    const heartbeatMs = this.#options.heartbeatMs;
    const now = Date.now();
    let nextDue = now + heartbeatMs;
    for (const stream of this.#streams) {
      const due = stream.lastWriteMs + heartbeatMs;
      if (due <= now) this.#write(stream, HEARTBEAT, now);
      else if (due < nextDue) nextDue = due;
    }
    this.#scheduleHeartbeat(Math.max(nextDue - now, 1));
  };

  #stopHeartbeats(): void {
    if (this.#heartbeatTimer !== null) clearTimeout(this.#heartbeatTimer);
    this.#heartbeatTimer = null;
  }

  // Attached once per stream to its connection's 'close': client gone, dropped, shut down.
  #cleanup(stream: SseStream): void {
    if (!this.#streams.delete(stream)) return;
    if (this.#streams.size === 0) this.#stopHeartbeats();
    this.#options.onClose?.(stream);
  }
}
