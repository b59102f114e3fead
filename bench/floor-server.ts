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
// Env: PORT (0), HOST (127.0.0.1), STATUS_INTERVAL_MS (1000), RETRY_MS (3000).

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { encodeChunk } from '../sse.ts';

const PORT = Number(process.env.PORT ?? 0);
const HOST = process.env.HOST ?? '127.0.0.1';
const INTERVAL_MS = Number(process.env.STATUS_INTERVAL_MS ?? 1000);
const RETRY_MS = Number(process.env.RETRY_MS ?? 3000);
const BOOT_ID = randomBytes(8).toString('hex');
const VERSION = '0.0.0-floor';
/** A request head longer than this is refused, as Node's own parser would. */
const MAX_HEAD_BYTES = 16 * 1024;

const streams = new Set<net.Socket>();
let rounds = 0;
let eventsSent = 0;
let latestChunk: Buffer | null = null;

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

// The snapshot status.ts builds with no CHECKS configured (SPEC §5), once per round.
function snapshot(): string {
  return JSON.stringify({
    status: 'up',
    time: new Date().toISOString(),
    checks: [],
    host: {
      hostname: os.hostname(),
      loadavg: os.loadavg(),
      memTotalBytes: os.totalmem(),
      memFreeBytes: os.freemem(),
      uptimeSeconds: os.uptime(),
    },
    service: {
      version: VERSION,
      uptimeSeconds: process.uptime(),
      clients: streams.size,
      rssBytes: process.memoryUsage.rss(),
    },
  });
}

function onRequest(socket: net.Socket, head: string): void {
  const path = (head.slice(0, head.indexOf('\r\n')).split(' ')[1] ?? '/').split('?')[0];
  if (path === '/events') {
    socket.write(latestChunk === null ? EVENTS_HEAD : Buffer.concat([EVENTS_HEAD, latestChunk]));
    streams.add(socket);
    socket.once('close', () => streams.delete(socket));
  } else if (path === '/healthz') {
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
}

/** Starts the broadcast timer and the server; only when this file is the program. */
function main(): void {
  setInterval(() => {
    rounds++;
    const frame = chunk(`id: ${BOOT_ID}-${rounds}\ndata: ${snapshot()}\n\n`);
    latestChunk = frame;
    for (const socket of streams) socket.write(frame);
    eventsSent += streams.size;
  }, INTERVAL_MS);

  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    let head = '';
    const onData = (data: Buffer): void => {
      head += data.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        socket.off('data', onData);
        // Keep reading, so that the client's FIN is seen and the socket closes.
        socket.on('data', () => {});
        onRequest(socket, head);
      } else if (head.length > MAX_HEAD_BYTES) {
        socket.destroy();
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
