// bench/floor-server.ts: the floor the benchmark measures status-stream against, the least
// a Node server can do to deliver one event to every open stream. After the request head
// there is no node:http at all: a raw `net` server writes a fixed response head, and once
// per interval it builds one snapshot, encodes it once as one HTTP/1.1 chunk, and writes
// that same Buffer to every socket with socket.write() in one synchronous loop. No
// ServerResponse, no slices, no slow-reader check, no heartbeats, no history, no limits:
// everything status-stream does on top is left out. So its delivery latency is what this
// machine charges for writing to N sockets one after another from one thread, and its
// CPU per event is the cost of the write itself; status-stream can approach it, not beat it.
// Only for the benchmark: 127.0.0.1 by default, no auth, no config validation.
//
// In the full scenario it does the full service's job by the same least means: it sends the
// service's own snapshot, read once from FLOOR_SNAPSHOT_FILE (a GET /status of the full
// service) with its `time` and each check's result renewed, so that every byte a client parses
// is the same (else its own snapshot padded to FLOOR_SNAPSHOT_CHARS); it runs the checks of
// CONFIG_FILE against the same targets (bench/floor-checks.ts); it takes the app's events from
// POST /publish on the app's keep-alive connection and sends each to the streams whose
// `?events=` filter lets it through; and every FLOOR_CHANGE_EVERY_MS it sends a `change` event
// to every stream and one alert to each receiver of CONFIG_FILE. Each event is encoded once.
//
// Env: PORT (0), HOST (127.0.0.1), STATUS_INTERVAL_MS (1000), RETRY_MS (3000),
//      FLOOR_SNAPSHOT_FILE (none), FLOOR_SNAPSHOT_CHARS (0: as is), CONFIG_FILE (none),
//      FLOOR_CHANGE_EVERY_MS (0: none).

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../config.ts';
import { encodeChunk } from '../sse.ts';
import { type FloorResult, floorConfig, postAlert, startFloorChecks } from './floor-checks.ts';

const PORT = Number(process.env.PORT ?? 0);
const HOST = process.env.HOST ?? '127.0.0.1';
const INTERVAL_MS = Number(process.env.STATUS_INTERVAL_MS ?? 1000);
const RETRY_MS = Number(process.env.RETRY_MS ?? 3000);
const SNAPSHOT_CHARS = Number(process.env.FLOOR_SNAPSHOT_CHARS ?? 0);
const SNAPSHOT_FILE = process.env.FLOOR_SNAPSHOT_FILE ?? '';
const CONFIG_FILE = process.env.CONFIG_FILE ?? '';
const CHANGE_EVERY_MS = Number(process.env.FLOOR_CHANGE_EVERY_MS ?? 0);
/** The full scenario's app event (bench/full-helper.ts). */
const APP_EVENT = 'deploy';
const BOOT_ID = randomBytes(8).toString('hex');
const VERSION = '0.0.0-floor';
/** A request head longer than this is refused, as Node's own parser would. */
const MAX_HEAD_BYTES = 16 * 1024;
/** A POST /publish body longer than this is refused, as the service refuses it. */
const MAX_BODY_BYTES = 64 * 1024;

/** The full service's snapshot (FLOOR_SNAPSHOT_FILE), whose `time` each round renews; read in main(). */
let sample: Record<string, unknown> | null = null;
const streams = new Set<net.Socket>();
/** The streams that take the app event: no filter, or one that names it. */
const appStreams = new Set<net.Socket>();
let rounds = 0;
let seq = 0;
let eventsSent = 0;
let latestChunk: Buffer | null = null;
/** When the latest broadcast loop began and ended (Date.now()). */
let loopStartMs = 0;
let loopEndMs = 0;

/** One HTTP/1.1 chunk of `payload`, encoded as the service encodes its broadcasts. */
function chunk(payload: string): Buffer {
  return encodeChunk(Buffer.from(payload));
}

const EVENTS_HEAD = Buffer.concat([
  Buffer.from(
    'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache, no-transform\r\n' +
      'Connection: keep-alive\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n\r\n',
  ),
  chunk(`retry: ${RETRY_MS}\n\n`),
]);

function reply(socket: net.Socket, status: string, contentType: string, body: string): void {
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

// The snapshot status.ts builds with no checks configured, once per round; padded to
// FLOOR_SNAPSHOT_CHARS when that is set. Its time is `timeMs`.
function snapshot(timeMs: number): string {
  if (sample !== null) {
    sample.time = new Date(timeMs).toISOString();
    return JSON.stringify(sample);
  }
  return floorSnapshot(VERSION, streams.size, SNAPSHOT_CHARS, timeMs);
}

/**
 * setInterval whose runs get a time that counts the wait the service would count. The service
 * stamps an event when its timer fires, which can be between a broadcast's slices, and then
 * finishes that broadcast before it writes the event (sse.ts): that wait is in the event's
 * latency. The floor writes each broadcast in one loop, so there a timer due during it fires
 * after it; `broadcastingAfter(dueMs)` says how much of the latest loop ran after the due
 * moment, and the run's time is that much earlier than its start. Node schedules the next
 * run from this one's start (lib/internal/timers.js, listOnTimeout).
 */
export function everyInterval(
  periodMs: number,
  broadcastingAfter: (ms: number) => number,
  run: (timeMs: number) => void,
): NodeJS.Timeout {
  let dueMs = Date.now() + periodMs;
  return setInterval(() => {
    const startMs = Date.now();
    run(startMs - broadcastingAfter(dueMs));
    dueMs = startMs + periodMs;
  }, periodMs);
}

/** How long the latest broadcast loop ran after `ms`. */
function broadcastingAfter(ms: number): number {
  return Math.max(0, loopEndMs - Math.max(ms, loopStartMs));
}

/**
 * What status.ts reports with no check (the host and the process), padded to `chars` when that is
 * set; bench/http-floor-server.ts sends the same.
 */
export function floorSnapshot(version: string, clients: number, chars: number, timeMs = Date.now()): string {
  const json = JSON.stringify({
    status: 'up',
    time: new Date(timeMs).toISOString(),
    checks: [],
    host: {
      hostname: os.hostname(),
      loadavg: os.loadavg(),
      memTotalBytes: os.totalmem(),
      memFreeBytes: os.freemem(),
      uptimeSeconds: os.uptime(),
    },
    service: {
      version,
      uptimeSeconds: process.uptime(),
      clients,
      rssBytes: process.memoryUsage.rss(),
    },
  });
  const pad = chars - json.length - ',"pad":""'.length;
  return pad > 0 ? `${json.slice(0, -1)},"pad":"${'x'.repeat(pad)}"}` : json;
}

/** Whether a request target's `?events=` filter lets the app event through (none: everything). */
export function takesAppEvent(target: string): boolean {
  const query = target.indexOf('?');
  if (query === -1) return true;
  const events = new URLSearchParams(target.slice(query + 1)).get('events');
  return events === null || events === '' || events.split(',').includes(APP_EVENT);
}

/** One frame, encoded once, written to every socket of `to`. */
function broadcast(to: ReadonlySet<net.Socket>, frame: Buffer): void {
  loopStartMs = Date.now();
  for (const socket of to) socket.write(frame);
  eventsSent += to.size;
  loopEndMs = Date.now();
}

/** Answers one request; true when the connection goes on to the next one (keep-alive). */
function onRequest(socket: net.Socket, head: string, body: Buffer): boolean {
  const target = head.slice(0, head.indexOf('\r\n')).split(' ')[1] ?? '/';
  const path = target.split('?')[0];
  if (path === '/events') {
    socket.write(latestChunk === null ? EVENTS_HEAD : Buffer.concat([EVENTS_HEAD, latestChunk]));
    streams.add(socket);
    if (takesAppEvent(target)) appStreams.add(socket);
    socket.once('close', () => {
      streams.delete(socket);
      appStreams.delete(socket);
    });
    return false;
  }
  if (path === '/publish' && head.startsWith('POST ')) return publish(socket, body);
  if (path === '/healthz') {
    reply(socket, '200 OK', 'application/json', '{"ok":true}');
  } else if (path === '/metrics') {
    // The family names of status-stream's /metrics, so that the bench reads both alike.
    reply(
      socket,
      '200 OK',
      'text/plain; version=0.0.4; charset=utf-8',
      `sse_clients ${streams.size}\nstatus_check_rounds_total ${rounds}\nsse_events_sent_total ${eventsSent}\n`,
    );
  } else {
    reply(socket, '404 Not Found', 'application/json', '{"error":"not found"}');
  }
  return false;
}

/** POST /publish: `{"event":"deploy","data":…}` to the streams that take it, answered 202 on a kept connection. */
function publish(socket: net.Socket, body: Buffer): boolean {
  let event: { event?: unknown; data?: unknown };
  try {
    event = JSON.parse(body.toString('utf8')) as { event?: unknown; data?: unknown };
  } catch {
    event = {};
  }
  if (event.event !== APP_EVENT) {
    reply(socket, '400 Bad Request', 'application/json', `{"error":"the floor sends only ${APP_EVENT}"}`);
    return false;
  }
  const id = `${BOOT_ID}-${++seq}`;
  broadcast(appStreams, chunk(`id: ${id}\nevent: ${APP_EVENT}\ndata: ${JSON.stringify(event.data)}\n\n`));
  const answer = JSON.stringify({ id });
  socket.write(
    `HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: ${answer.length}\r\n\r\n${answer}`,
  );
  return true;
}

/** The length of a request's body: its Content-Length, 0 without one, -1 when it cannot be taken. */
export function bodyLength(head: string): number {
  const match = /\r\ncontent-length:[ \t]*(\d+)[ \t]*\r\n/i.exec(head);
  if (match === null) return /\r\ntransfer-encoding:/i.test(head) ? -1 : 0;
  const length = Number(match[1]);
  return length > MAX_BODY_BYTES ? -1 : length;
}

/** A result of the floor's checks written into the snapshot it sends, where that check is. */
function showResult(name: string, result: FloorResult): void {
  const checks = sample?.checks;
  if (!Array.isArray(checks)) return;
  const shown = (checks as Array<Record<string, unknown>>).find((check) => check.name === name);
  if (shown === undefined) return;
  shown.state = result.state;
  shown.ok = result.state !== 'down';
  shown.latencyMs = Math.round(result.latencyMs * 10) / 10;
  shown.detail = result.detail;
}

/** Starts the broadcast timer and the server; only when this file is the program. */
function main(): void {
  if (SNAPSHOT_FILE !== '') sample = JSON.parse(readFileSync(SNAPSHOT_FILE, 'utf8')) as Record<string, unknown>;
  everyInterval(INTERVAL_MS, broadcastingAfter, (timeMs) => {
    rounds++;
    const frame = chunk(`id: ${BOOT_ID}-${++seq}\ndata: ${snapshot(timeMs)}\n\n`);
    latestChunk = frame;
    broadcast(streams, frame);
  });
  // The service's check defaults, read from the same environment as the service reads them.
  const { intervalMs, checkTimeoutMs } = parseConfig(process.env);
  const defaults = { intervalMs, timeoutMs: checkTimeoutMs };
  const config = CONFIG_FILE === '' ? null : floorConfig(readFileSync(CONFIG_FILE, 'utf8'), defaults);
  if (config !== null) startFloorChecks(config.checks, (i, result) => showResult(config.checks[i].name, result));
  let down = false;
  // The full scenario's flapping check is its last (bench/full-helper.ts).
  const flapper = config?.checks.at(-1)?.name ?? 'svc-49';
  if (CHANGE_EVERY_MS > 0) {
    // Half an interval after the snapshots' turn, so that a change is never due during a
    // snapshot's loop: the least wait, as a floor should have.
    const change = (timeMs: number): void => {
      down = !down;
      const [from, to] = down ? ['up', 'down'] : ['down', 'up'];
      const reason = down ? 'HTTP 503, expected 200-399' : null;
      const data = JSON.stringify({ time: new Date(timeMs).toISOString(), check: flapper, from, to, reason });
      broadcast(streams, chunk(`id: ${BOOT_ID}-${++seq}\nevent: change\ndata: ${data}\n\n`));
      for (const receiver of config?.receivers ?? []) postAlert(receiver, data);
    };
    setTimeout(() => everyInterval(CHANGE_EVERY_MS, broadcastingAfter, change), INTERVAL_MS / 2);
  }

  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    let received: Buffer = Buffer.alloc(0);
    const onData = (data: Buffer): void => {
      received = received.length === 0 ? data : Buffer.concat([received, data]);
      for (;;) {
        const headEnd = received.indexOf('\r\n\r\n');
        if (headEnd === -1) {
          if (received.length > MAX_HEAD_BYTES) socket.destroy();
          return;
        }
        const head = received.toString('latin1', 0, headEnd + 2);
        const length = bodyLength(head);
        if (length < 0) {
          socket.destroy();
          return;
        }
        const end = headEnd + 4 + length;
        if (received.length < end) return;
        const body = received.subarray(headEnd + 4, end);
        received = received.subarray(end);
        if (!onRequest(socket, head, body)) {
          socket.off('data', onData);
          // Keep reading, so that the client's FIN is seen and the socket closes.
          socket.on('data', () => {});
          return;
        }
      }
    };
    socket.on('data', onData);
  });

  // The same backlog as status-stream's: the floor is about writing, not about accepting.
  server.listen({ port: PORT, host: HOST, backlog: 4096 }, () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : PORT;
    process.stdout.write(`${JSON.stringify({ level: 30, time: Date.now(), msg: 'floor server listening', port })}\n`);
  });

  const stop = (): void => {
    // process.exit() lets --cpu-prof write its profile; the streams just drop.
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) main();
