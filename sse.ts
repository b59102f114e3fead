// sse.ts: the Server-Sent Events transport: frames, the registry of open streams, broadcasts,
// resume, heartbeats, slow-reader drops and the end of every stream at shutdown.
// It knows no routes and no status semantics: it is given strings and sends them.
// Wire format: https://html.spec.whatwg.org/multipage/server-sent-events.html; ours: docs/protocol.md

import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { type EventFilter, ReplayBuffer, type ReplayEntry, SNAPSHOT_TYPE } from './replay.ts';

export { type EventFilter, SNAPSHOT_TYPE } from './replay.ts';

/** Thrown for a frame, event name or filter that cannot be used; the message says what was given. */
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

const LINE_BREAK = /[\r\n]/;
// Lines end with CRLF, LF or CR (WHATWG HTML, "Parsing an event stream").
const LINE_ENDING = /\r\n|\r|\n/;

/**
 * Formats one event block, ending with the blank line that dispatches it.
 * `data` may hold any line endings: each line becomes its own `data:` line, which the
 * client joins back with LF. `id` and `event` may not hold CR, LF or NUL: a line break
 * would let the value inject fields, and clients ignore an id with NUL
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html#processField).
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
  if (LINE_BREAK.test(value) || value.includes('\0')) {
    throw new SseError(`sse: ${field} must not contain CR, LF or NUL, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** What a named event may be called; `message` is a snapshot, and the hub's own events are reserved. */
export const EVENT_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
/** Names publishEvent() refuses: snapshots (`message`) and the hub's own `done` and `reset`. */
export const RESERVED_EVENT_NAMES: ReadonlySet<string> = new Set([SNAPSHOT_TYPE, 'done', 'reset']);
/** The most names one `?events=` filter may list. */
export const MAX_FILTER_NAMES = 32;

/** How many distinct filters parseEventFilter() keeps to hand out again; past it, it starts over. */
export const SHARED_FILTERS_MAX = 64;
// Streams asking for the same filter share one Set: a Set of two names and its strings
// hold ~300 bytes on Node 24, 1.5 MB for 5,000 filtered streams (bench/README.md, Summary).
const sharedFilters = new Map<string, ReadonlySet<string>>();

/**
 * Parses a stream filter, `message,change,deploy` (the `events` query parameter): the event
 * types the stream receives, `message` meaning snapshots. Null or empty: every type. The
 * same value gives the same read-only Set, from a table of at most SHARED_FILTERS_MAX values.
 * Throws SseError for a name that no event can have, or more than MAX_FILTER_NAMES names.
 */
export function parseEventFilter(value: string | null): EventFilter {
  if (value === null || value === '') return null;
  const shared = sharedFilters.get(value);
  if (shared !== undefined) return shared;
  const names = value.split(',');
  if (names.length > MAX_FILTER_NAMES) {
    throw new SseError(`sse: events may list at most ${MAX_FILTER_NAMES} names, got ${names.length}`);
  }
  for (const name of names) {
    if (!EVENT_NAME.test(name)) {
      const given = JSON.stringify(name.slice(0, 80));
      throw new SseError(`sse: events must be comma-separated names (${EVENT_NAME.source}), got ${given}`);
    }
  }
  // Starting over, rather than refusing new values, keeps the filters in use now shared
  // even after a client has sent many that nobody else uses.
  if (sharedFilters.size >= SHARED_FILTERS_MAX) sharedFilters.clear();
  const filter: ReadonlySet<string> = new Set(names);
  sharedFilters.set(value, filter);
  return filter;
}

/**
 * Response headers of a stream.
 * - Content-Type exactly `text/event-stream`: the stream is always UTF-8, and a charset
 *   parameter makes some proxies buffer.
 * - `no-transform` forbids intermediaries to compress or re-chunk (RFC 9111 §5.2.2.6).
 * - `X-Accel-Buffering: no` turns Nginx's proxy buffering off for this response
 *   (https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_buffering).
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
const RESET = Buffer.from(formatFrame({ event: 'reset', data: '{"reason":"replay too large"}' }));
/** A collapsed replay larger than this is replaced by `event: reset` and the latest snapshot. */
export const MAX_REPLAY_BYTES = 1024 * 1024;
/** After `done`, how long a socket the client does not close is kept before it is destroyed. */
export const DONE_LINGER_MS = 1000;
// Streams written per macrotask in a broadcast (see #runBroadcast); 500 writes take ~8 ms.
const BROADCAST_SLICE = 500;

/** `frame` as one chunk of HTTP/1.1's chunked transfer coding (RFC 9112 §7.1): size in hex, CRLF, the bytes, CRLF. */
export function encodeChunk(frame: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${frame.length.toString(16)}\r\n`, 'latin1'), frame, CRLF]);
}

export type CloseReason = 'client' | 'slow' | 'shutdown';

interface Outgoing {
  readonly seq: number;
  /** SNAPSHOT_TYPE or the event's name: what a stream's filter is asked about. */
  readonly type: string;
  readonly frame: Buffer;
  /** The same frame as one HTTP/1.1 chunk: what a chunked response puts on the wire for it. */
  readonly chunk: Buffer;
}

/** The events being written to every stream, oldest first, and where the pass over the streams is. */
interface Broadcast {
  events: Outgoing[];
  streams: SetIterator<SseStream>;
  /** The newest event when this pass began: any later one joined it, and the streams it passed still need it. */
  passFrom: number;
}

/** One open stream. Deliberately small: 10,000 of these are held at once. */
export class SseStream {
  readonly res: ServerResponse;
  /** Its connection, also once the response has let go of it (after shutdown's end). */
  readonly socket: Socket;
  /** The event types it receives; null = all. */
  readonly events: EventFilter;
  /** Date.now() of the last frame written; the shared heartbeat sweep reads it. */
  lastWriteMs = 0;
  /** The sequence number of the last event it is up to date with, so a broadcast never repeats one. */
  lastSeq = 0;
  /** What its first frames (replay or latest snapshot) left unsent: it may hold this much on
   *  top of maxBufferedBytes until it first drains below that limit; then 0. */
  openingBacklogBytes = 0;
  /** Why the server closed it; stays 'client' when the client went away. */
  closeReason: CloseReason = 'client';
  constructor(res: ServerResponse, socket: Socket, events: EventFilter) {
    this.res = res;
    this.socket = socket;
    this.events = events;
  }
}

export interface OpenOptions {
  /** The client's Last-Event-ID (header or query); null for a first connection. */
  readonly lastEventId: string | null;
  /** The event types the stream receives (parseEventFilter); null = all. */
  readonly events: EventFilter;
}

export interface HubOptions {
  /** The reconnection time sent first on every stream, ms. */
  readonly retryMs: number;
  /** Silence after which a stream gets a heartbeat comment, ms; 0 = no heartbeats. */
  readonly heartbeatMs: number;
  /** Events kept for Last-Event-ID; 0 = none (every resume gets the latest snapshot). */
  readonly replaySize: number;
  /** Streams open at once; open() answers 'full' beyond it. */
  readonly maxClients: number;
  /** Unsent bytes a stream may hold before it is dropped as slow (its replay's bytes aside). */
  readonly maxBufferedBytes: number;
  /** Streams written per turn of the event loop in a broadcast; BROADCAST_SLICE by default. */
  readonly broadcastSlice?: number;
  /** Called after a stream is registered and its first frames are written. */
  readonly onOpen?: (stream: SseStream) => void;
  /** Called once per stream, right after it is unregistered. */
  readonly onClose?: (stream: SseStream) => void;
}

export interface HubStats {
  connectionsTotal: number;
  eventsSent: number;
  bytesSent: number;
  dropped: { slow: number; full: number; shutdown: number };
  /** Requests not opened because their response did not own its socket (pipelined). */
  queued: number;
  /** Resumes answered with a replay (possibly empty), and those answered with `event: reset`. */
  replays: number;
  resets: number;
}

/**
 * The registry of open streams and the broadcaster. An event is formatted and encoded
 * once, and the same Buffer is written to every stream. One shared timer serves the
 * heartbeats of all streams: no timer per client.
 */
export class SseHub {
  readonly bootId: string;
  readonly stats: HubStats = {
    connectionsTotal: 0,
    eventsSent: 0,
    bytesSent: 0,
    dropped: { slow: 0, full: 0, shutdown: 0 },
    queued: 0,
    replays: 0,
    resets: 0,
  };
  readonly #options: HubOptions;
  readonly #streams = new Set<SseStream>();
  readonly #retryFrame: Buffer;
  readonly #replay: ReplayBuffer;
  /** What a new stream gets first: the newest snapshot, whatever named events came after it. */
  #latestSnapshot: ReplayEntry | null = null;
  #broadcast: Broadcast | null = null;
  #heartbeatTimer: NodeJS.Timeout | null = null;

  constructor(options: HubOptions) {
    this.#options = options;
    this.#retryFrame = Buffer.from(formatFrame({ retry: options.retryMs }));
    this.#replay = new ReplayBuffer(options.replaySize);
    this.bootId = this.#replay.bootId;
  }

  get size(): number {
    return this.#streams.size;
  }

  get full(): boolean {
    return this.#streams.size >= this.#options.maxClients;
  }

  /**
   * Starts a stream on `res`: headers, `retry:`, then either the collapsed replay after
   * `lastEventId`, or (new stream, unknown id) the latest snapshot when there is one.
   * 'queued': `res` does not own a live socket (a request pipelined behind another
   * response, or a connection already gone): nothing written, nothing registered, and the
   * caller answers nothing. 'full': MAX_CLIENTS streams are open, nothing written: the
   * caller answers 503.
   */
  open(res: ServerResponse, options: OpenOptions): SseStream | 'full' | 'queued' {
    const socket = res.socket;
    if (socket === null || socket.destroyed) {
      this.stats.queued++;
      return 'queued';
    }
    if (this.full) {
      this.stats.dropped.full++;
      return 'full';
    }
    const stream = new SseStream(res, socket, options.events);
    this.#streams.add(stream);
    this.stats.connectionsTotal++;
    // The connection's 'close' comes for every way a stream ends: client gone, dropped, shut down.
    socket.once('close', () => this.#unregister(stream));
    // Nagle would hold a small frame back for up to 200 ms waiting for more (RFC 896).
    socket.setNoDelay(true);
    res.writeHead(200, SSE_HEADERS);
    const now = Date.now();
    // What the client asked for by opening, not a sign that it reads slowly: written without
    // the slow check, and allowed on top of maxBufferedBytes until the stream first drains.
    this.#writeUnchecked(stream, this.#retryFrame, now);
    for (const frame of this.#firstEvents(stream, options.lastEventId)) {
      this.#writeUnchecked(stream, frame, now);
      this.stats.eventsSent++;
    }
    stream.openingBacklogBytes = res.writableLength;
    // Up to date now, also with an event whose broadcast is still under way.
    stream.lastSeq = this.#replay.lastSeq;
    if (this.#heartbeatTimer === null) this.#scheduleHeartbeat(this.#options.heartbeatMs);
    this.#options.onOpen?.(stream);
    return stream;
  }

  /** The collapsed replay after `lastEventId`; for a new stream or an unknown id, the latest snapshot. */
  #firstEvents(stream: SseStream, lastEventId: string | null): Buffer[] {
    const replay = this.#replay.collapsedAfter(lastEventId, stream.events);
    if (replay === null) return this.#latestSnapshotFor(stream);
    this.stats.replays++;
    if (replay.bytes <= MAX_REPLAY_BYTES) return replay.entries.map((entry) => entry.frame);
    this.stats.resets++;
    return [RESET, ...this.#latestSnapshotFor(stream)];
  }

  #latestSnapshotFor(stream: SseStream): Buffer[] {
    return this.#latestSnapshot !== null && passes(stream, SNAPSHOT_TYPE) ? [this.#latestSnapshot.frame] : [];
  }

  /** Sends `json` to every stream as the next unnamed event, which becomes the latest snapshot. Returns its id. */
  publishSnapshot(json: string): string {
    const entry = this.#replay.record(SNAPSHOT_TYPE, (id) => Buffer.from(formatFrame({ id, data: json })));
    this.#latestSnapshot = entry;
    this.#startBroadcast(entry);
    return this.#replay.idOf(entry.seq);
  }

  /**
   * Sends `json` to every stream as the next event named `event`: kept for replay, never
   * the latest snapshot. Returns its id. Throws SseError for a name outside EVENT_NAME or
   * in RESERVED_EVENT_NAMES.
   */
  publishEvent(event: string, json: string): string {
    if (!EVENT_NAME.test(event) || RESERVED_EVENT_NAMES.has(event)) {
      const rule = `${EVENT_NAME.source}, not ${[...RESERVED_EVENT_NAMES].join(', ')}`;
      throw new SseError(`sse: an event name must match ${rule}, got ${JSON.stringify(event)}`);
    }
    const entry = this.#replay.record(event, (id) => Buffer.from(formatFrame({ id, event, data: json })));
    this.#startBroadcast(entry);
    return this.#replay.idOf(entry.seq);
  }

  #startBroadcast(entry: ReplayEntry): void {
    const { seq, type, frame } = entry;
    const event: Outgoing = { seq, type, frame, chunk: encodeChunk(frame) };
    // An event that comes during a broadcast joins it: the streams still ahead get both in one
    // write, and one more pass brings it to those already written. Each stream gets events in
    // order, and none waits for a whole broadcast before its own begins.
    if (this.#broadcast !== null) {
      this.#broadcast.events.push(event);
      return;
    }
    this.#broadcast = { events: [event], streams: this.#streams.values(), passFrom: seq };
    this.#runBroadcast(this.#broadcast, this.#options.broadcastSlice ?? BROADCAST_SLICE);
  }

  readonly #continueBroadcast = (): void => {
    if (this.#broadcast !== null) this.#runBroadcast(this.#broadcast, this.#options.broadcastSlice ?? BROADCAST_SLICE);
  };

  // Slices, one macrotask each: the garbage of each socket write lives until the nextTick
  // queue drains, so one loop over 10,000 streams would promote it all to the old generation
  // (bench/README.md; Node's afterWriteTick in lib/internal/streams/writable.js).
  // A Set iterator also visits streams opened meanwhile; their lastSeq tells they are up to date.
  #runBroadcast(job: Broadcast, limit: number): void {
    const now = Date.now();
    const newest = (job.events.at(-1) as Outgoing).seq;
    let written = 0;
    let n = 0;
    for (;;) {
      if (n >= limit) {
        this.stats.eventsSent += written;
        setImmediate(this.#continueBroadcast);
        return;
      }
      const next = job.streams.next();
      if (next.done) {
        if (job.passFrom === newest) break;
        // Every stream now has the events this pass began with; another pass for those that joined.
        job.events = job.events.filter((event) => event.seq > job.passFrom);
        job.passFrom = newest;
        job.streams = this.#streams.values();
        continue;
      }
      const stream = next.value;
      if (stream.lastSeq >= newest) continue;
      n++;
      written += this.#writeDue(stream, job.events, now);
      stream.lastSeq = newest;
    }
    this.stats.eventsSent += written;
    this.#broadcast = null;
  }

  /** Writes the events after the stream's lastSeq that its filter lets through; how many it wrote. */
  #writeDue(stream: SseStream, events: readonly Outgoing[], now: number): number {
    let first = events.length - 1;
    while (first > 0 && (events[first - 1] as Outgoing).seq > stream.lastSeq) first--;
    if (first === events.length - 1) {
      const only = events[first] as Outgoing;
      return passes(stream, only.type) && this.#writeShared(stream, only, now) ? 1 : 0;
    }
    // Several due (an event joined a broadcast under way): corked, they leave in one write().
    const socket = stream.socket;
    socket.cork();
    let written = 0;
    for (let i = first; i < events.length; i++) {
      const event = events[i] as Outgoing;
      if (!passes(stream, event.type)) continue;
      if (!this.#writeShared(stream, event, now)) break;
      written++;
    }
    socket.uncork();
    return written;
  }

  /**
   * Shutdown: each stream gets `retry:` with a jitter of up to RETRY_MS, so that the
   * clients of this replica do not all reconnect at the same moment, then `event: done`,
   * and its response ends, then its socket. A socket the client has not closed
   * DONE_LINGER_MS later is destroyed, so that it cannot hold the exit up.
   */
  closeAll(): void {
    this.#broadcast = null;
    this.#stopHeartbeats();
    const retryMs = this.#options.retryMs;
    const sockets: Socket[] = [];
    for (const stream of this.#streams) {
      stream.closeReason = 'shutdown';
      this.stats.dropped.shutdown++;
      const now = Date.now();
      const jitterMs = Math.floor(Math.random() * (retryMs + 1));
      this.#write(stream, Buffer.from(formatFrame({ retry: retryMs + jitterMs })), now);
      this.#writeEvent(stream, DONE, now);
      const socket = stream.socket;
      sockets.push(socket);
      stream.res.end(() => socket.end());
    }
    if (sockets.length > 0) setTimeout(destroySockets, DONE_LINGER_MS, sockets).unref();
  }

  /**
   * Cuts every stream's connection now: the end of the shutdown grace. Node's
   * server.closeAllConnections() does not reach them, as they gave back their parsers
   * (http/connections.ts, releaseParser).
   */
  destroyAll(): void {
    destroySockets(Array.from(this.#streams, (stream) => stream.socket));
  }

  /** Writes one frame unless the stream is gone or now dropped as slow. */
  #write(stream: SseStream, frame: Buffer, now: number): boolean {
    if (!this.#keepOrDropSlow(stream)) return false;
    this.#writeUnchecked(stream, frame, now);
    return true;
  }

  #writeUnchecked(stream: SseStream, frame: Buffer, now: number): void {
    stream.res.write(frame);
    stream.lastWriteMs = now;
    this.stats.bytesSent += frame.length;
  }

  #writeEvent(stream: SseStream, frame: Buffer, now: number): void {
    if (this.#write(stream, frame, now)) this.stats.eventsSent++;
  }

  // A broadcast's write: one Buffer shared by every stream, straight to the socket in one
  // write(); ServerResponse.write() would chunk-encode it again per stream (bench/README.md).
  // Node decided the framing at writeHead(): chunked (HTTP/1.1) gets the chunk, otherwise
  // (HTTP/1.0) the bare frame. Direct only while the response holds no bytes of its own
  // (its writableLength, which includes the socket's, equals the socket's); else Node writes it.
  #writeShared(stream: SseStream, job: Outgoing, now: number): boolean {
    const res = stream.res;
    const socket = res.socket;
    if (socket === null || !socket.writable || res.writableLength !== socket.writableLength) {
      return this.#write(stream, job.frame, now);
    }
    if (!this.#keepOrDropSlow(stream)) return false;
    socket.write(res.chunkedEncoding ? job.chunk : job.frame);
    stream.lastWriteMs = now;
    this.stats.bytesSent += job.frame.length;
    return true;
  }

  /** False when the stream is closed, or too far behind and now destroyed and unregistered. */
  #keepOrDropSlow(stream: SseStream): boolean {
    const res = stream.res;
    if (res.destroyed) {
      this.#unregister(stream);
      return false;
    }
    // writableLength: what Node holds for this response and its socket, bytes the kernel
    // would not take. Past the limit the reader is not keeping up; buffering more would let
    // one client grow the server's memory without bound.
    const buffered = res.writableLength;
    const limit = this.#options.maxBufferedBytes;
    if (buffered <= limit) {
      stream.openingBacklogBytes = 0;
      return true;
    }
    if (buffered <= limit + stream.openingBacklogBytes) return true;
    stream.closeReason = 'slow';
    this.stats.dropped.slow++;
    res.destroy();
    this.#unregister(stream);
    return false;
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

  // The one cleanup of a stream, idempotent: on its connection's 'close', and at once when
  // it is dropped as slow, so that its slot is free before the socket is gone.
  #unregister(stream: SseStream): void {
    if (!this.#streams.delete(stream)) return;
    if (this.#streams.size === 0) this.#stopHeartbeats();
    this.#options.onClose?.(stream);
  }
}

function passes(stream: SseStream, type: string): boolean {
  return stream.events === null || stream.events.has(type);
}

function destroySockets(sockets: readonly Socket[]): void {
  for (const socket of sockets) if (!socket.destroyed) socket.destroy();
}
