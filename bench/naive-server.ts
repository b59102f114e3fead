// bench/naive-server.ts: the baseline the benchmark compares status-stream against. It is
// the card's shape done the obvious way, the way the Gin handler this project descends
// from did it: every stream has its own timer, runs its own check, builds its own
// snapshot and serializes its own frame; the listen backlog is Node's default (511).
// It must stay naive: making it faster would make every ratio in the report a lie.
// Only for the benchmark: no auth, no config validation, 127.0.0.1 by default.
//
// Env: PORT (0), HOST (127.0.0.1), STATUS_INTERVAL_MS (1000), RETRY_MS (3000).

import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const PORT = Number(process.env.PORT ?? 0);
const HOST = process.env.HOST ?? '127.0.0.1';
const INTERVAL_MS = Number(process.env.STATUS_INTERVAL_MS ?? 1000);
const RETRY_MS = Number(process.env.RETRY_MS ?? 3000);
const BOOT_ID = randomBytes(4).toString('hex');
const VERSION = '0.0.0-naive';

const loopDelay = monitorEventLoopDelay({ resolution: 20 });

let clients = 0;
let checks = 0;
let eventsSent = 0;

// What status.ts reports with no CHECKS configured: the host and the process.
function check(): object {
  checks++;
  return {
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
      clients,
      rssBytes: process.memoryUsage.rss(),
      eventLoopDelayMs: loopDelay.mean / 1e6,
    },
  };
}

function stream(res: ServerResponse): void {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  res.socket?.setNoDelay(true);
  res.write(`retry: ${RETRY_MS}\n\n`);
  clients++;
  let seq = 0;
  // The naive part: a timer, a check and a JSON.stringify per client, per interval.
  const send = (): void => {
    res.write(`id: ${BOOT_ID}-${++seq}\ndata: ${JSON.stringify(check())}\n\n`);
    eventsSent++;
  };
  send();
  const timer = setInterval(send, INTERVAL_MS);
  res.on('close', () => {
    clearInterval(timer);
    clients--;
  });
}

/** Starts the server; only when this file is the program. */
function main(): void {
  loopDelay.enable();
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/events') {
      stream(res);
    } else if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
    } else if (path === '/metrics') {
      // The same family names as status-stream's /metrics, so the bench reads both alike;
      // here every per-client check counts as a round, which is the point of the baseline.
      res
        .writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' })
        .end(
          `# HELP sse_clients Open streams.\n# TYPE sse_clients gauge\nsse_clients ${clients}\n` +
            `# HELP status_check_rounds_total Check rounds run.\n# TYPE status_check_rounds_total counter\nstatus_check_rounds_total ${checks}\n` +
            `# HELP sse_events_sent_total Events written.\n# TYPE sse_events_sent_total counter\nsse_events_sent_total ${eventsSent}\n`,
        );
    } else {
      res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"error":"not found"}');
    }
  });

  // Default backlog (511): part of the naive shape.
  server.listen(PORT, HOST, () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : PORT;
    process.stdout.write(`${JSON.stringify({ level: 30, time: Date.now(), msg: 'naive server listening', port })}\n`);
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
