// bench/http-floor-server.ts: the floor's broadcast on node:http connections, to tell what
// node:http costs per event from what status-stream's hub adds. A node:http server (Node's
// default options, noDelay) answers GET /events with the stream's head and `retry:`, then
// once per interval encodes one snapshot as one HTTP/1.1 chunk and writes that same Buffer
// to every stream's socket in one loop, as bench/floor-server.ts does. Not one of the
// bench's servers: run it in status-stream's place (bench/README.md, "The bare scenario,
// Node 20"):
//
//   npm run bench -- --only status-stream --server-script bench/http-floor-server.ts \
//     --server-env FLOOR_SNAPSHOT_CHARS=365
//
// Env: PORT (0), HOST (127.0.0.1), STATUS_INTERVAL_MS (1000), RETRY_MS (3000),
//      FLOOR_SNAPSHOT_CHARS (0: as is; 365 is status-stream's bare snapshot).

import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { encodeChunk, SSE_HEADERS } from '../sse.ts';
import { floorSnapshot } from './floor-server.ts';

const PORT = Number(process.env.PORT ?? 0);
const HOST = process.env.HOST ?? '127.0.0.1';
const INTERVAL_MS = Number(process.env.STATUS_INTERVAL_MS ?? 1000);
const RETRY_MS = Number(process.env.RETRY_MS ?? 3000);
const SNAPSHOT_CHARS = Number(process.env.FLOOR_SNAPSHOT_CHARS ?? 0);
const BOOT_ID = randomBytes(8).toString('hex');

const streams = new Set<Socket>();
let rounds = 0;
let seq = 0;

// bench/floor-server.ts's snapshot, padded to SNAPSHOT_CHARS when that is set.
function snapshot(): string {
  return floorSnapshot('0.0.0-http-floor', streams.size, SNAPSHOT_CHARS);
}

function main(): void {
  const server = http.createServer({ noDelay: true }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/events' && res.socket !== null) {
      const socket = res.socket;
      res.writeHead(200, SSE_HEADERS);
      res.write(`retry: ${RETRY_MS}\n\n`);
      streams.add(socket);
      socket.once('close', () => streams.delete(socket));
    } else if (path === '/metrics') {
      // The family names of status-stream's /metrics, so that the bench reads both alike.
      res.end(`sse_clients ${streams.size}\nstatus_check_rounds_total ${rounds}\n`);
    } else {
      res.end('{"ok":true}');
    }
  });
  setInterval(() => {
    rounds++;
    const chunk = encodeChunk(Buffer.from(`id: ${BOOT_ID}-${++seq}\ndata: ${snapshot()}\n\n`));
    for (const socket of streams) socket.write(chunk);
  }, INTERVAL_MS);
  server.listen({ port: PORT, host: HOST, backlog: 4096 });
  const stop = (): void => process.exit(0);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) main();
