// server.ts: the entry point. It reads the config, builds the node:http server, routes by
// hand, and owns start-up and shutdown. It wires the poller (status.ts) to the hub
// (sse.ts): checks -> snapshot -> one serialized frame -> every stream.
// It never formats an SSE frame and never runs a check itself.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { ConfigError, HELP, parseConfig, redactedConfig, type Config } from './config.ts';
import { createLogger, type Logger } from './log.ts';
import { METRICS_CONTENT_TYPE, renderMetrics } from './metrics.ts';
import { SSE_HEADERS, SseHub } from './sse.ts';
import { StatusPoller, type Latest } from './status.ts';

// The kernel caps this at net.core.somaxconn (4096 on current Linux). Node's default, 511,
// overflows when thousands of clients reconnect at once (after a replica restart), and the
// dropped SYNs are retried only after 1 s, 3 s, 7 s.
const LISTEN_BACKLOG = 4096;

type Handler = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams) => void | Promise<void>;

interface Route {
  readonly handler: Handler;
  /** Needs AUTH_TOKEN when one is set. */
  readonly protected: boolean;
}

const ALLOW = 'GET, HEAD, OPTIONS';

export interface StartOptions {
  readonly log: Logger;
  /** The HTML of the status page; read from page.html beside this file by default. */
  readonly page?: string;
  /** The version snapshots report; package.json's by default. */
  readonly version?: string;
}

export interface RunningServer {
  readonly server: http.Server;
  readonly hub: SseHub;
  readonly poller: StatusPoller;
  readonly port: number;
  readonly url: string;
  /** Drains every stream and socket; resolves when all are closed or the grace ran out. */
  shutdown(): Promise<void>;
}

/** Builds the server and listens. Rejects when the port cannot be bound. */
export async function startServer(config: Config, options: StartOptions): Promise<RunningServer> {
  const { log } = options;
  const version = options.version ?? readVersion();
  const page = preparePage(options.page ?? readFileSync(new URL('./page.html', import.meta.url), 'utf8'));
  const retryAfterSeconds = String(Math.max(1, Math.ceil(config.retryMs / 1000)));
  let draining = false;

  const hub: SseHub = new SseHub({
    retryMs: config.retryMs,
    heartbeatMs: config.heartbeatMs,
    historySize: config.historySize,
    maxClients: config.maxClients,
    maxBufferedBytes: config.maxBufferedBytes,
    onOpen: log.isDebug ? (stream) => log.debug('stream opened', { remote: stream.res.socket?.remoteAddress, clients: hub.size }) : undefined,
    onClose: (stream) => {
      if (stream.closeReason === 'slow') log.warn('stream dropped: slow reader', { remote: stream.res.socket?.remoteAddress, maxBufferedBytes: config.maxBufferedBytes });
      else log.debug('stream closed', { reason: stream.closeReason, clients: hub.size });
      // The last stream gone: no one to poll for. Its timer goes with it.
      if (hub.size === 0) poller.stop();
    },
  });

  const poller: StatusPoller = new StatusPoller({
    checks: config.checks,
    intervalMs: config.intervalMs,
    checkTimeoutMs: config.checkTimeoutMs,
    version,
    clients: () => hub.size,
    onSnapshot: (latest: Latest) => hub.publish(latest.json),
    log,
  });

  const routes: Record<string, Route> = {
    '/': { protected: false, handler: (_req, res) => send(res, 200, page.html, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-cache', ...page.headers }) },
    '/events': { protected: true, handler: openStream },
    '/status': { protected: true, handler: sendStatus },
    '/healthz': { protected: false, handler: (_req, res) => sendJson(res, 200, '{"ok":true}') },
    '/readyz': { protected: false, handler: sendReadiness },
    '/metrics': {
      protected: true,
      handler: (_req, res) => send(res, 200, renderMetrics({ clients: hub.size, hub: hub.stats, rounds: poller.rounds, checks: poller.checkStats }), {
        'Content-Type': METRICS_CONTENT_TYPE, 'Cache-Control': 'no-store',
      }),
    },
  };

  function openStream(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): void {
    if (draining) return unavailable(res, 'shutting down');
    if (req.method === 'HEAD') {
      res.writeHead(200, SSE_HEADERS).end();
      return;
    }
    // The header is what EventSource sends when it reconnects; the query parameter is for a
    // first connection that resumes (EventSource cannot set headers). On a reconnect the URL
    // still holds the first id, so the header, which is newer, wins.
    const lastEventId = firstHeader(req.headers['last-event-id']) ?? query.get('lastEventId');
    const fresh = poller.fresh();
    const stream = hub.open(res, lastEventId, fresh !== null);
    if (stream === null) return unavailable(res, 'too many streams');
    // Starts the shared poller with the first stream; with no fresh snapshot it runs a
    // round now, whose snapshot every open stream receives when it ends.
    poller.start();
  }

  async function sendStatus(_req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Concurrent requests share one round; the poller is not started for them.
    const latest = poller.fresh() ?? (await poller.round());
    sendJson(res, 200, latest.json);
  }

  function sendReadiness(_req: IncomingMessage, res: ServerResponse): void {
    if (draining) return unavailable(res, 'shutting down');
    if (hub.full) return unavailable(res, 'too many streams');
    sendJson(res, 200, '{"ready":true}');
  }

  function unavailable(res: ServerResponse, error: string): void {
    sendJson(res, 503, JSON.stringify({ error }), { 'Retry-After': retryAfterSeconds });
  }

  function send(res: ServerResponse, status: number, body: string, headers: Record<string, string>): void {
    // While draining, each answer closes its connection, so keep-alive sockets go away.
    if (draining) res.setHeader('Connection', 'close');
    res.writeHead(status, { 'Content-Length': Buffer.byteLength(body), 'X-Content-Type-Options': 'nosniff', ...headers });
    res.end(body);
  }

  function sendJson(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
    send(res, status, body, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', ...headers });
  }

  // CORS (Fetch Standard, "CORS protocol"): the origin is echoed only when it is listed,
  // and Vary: Origin tells caches that the answer depends on it.
  function applyCors(req: IncomingMessage, res: ServerResponse): boolean {
    const allowed = config.corsOrigins;
    if (allowed !== '*' && allowed.length === 0) return false;
    res.setHeader('Vary', 'Origin');
    const origin = req.headers.origin;
    if (allowed === '*') res.setHeader('Access-Control-Allow-Origin', '*');
    else if (origin !== undefined && allowed.includes(origin)) res.setHeader('Access-Control-Allow-Origin', origin);
    return true;
  }

  const expectedTokenDigest = config.authToken === null ? null : sha256(config.authToken);
  function authorized(req: IncomingMessage, query: URLSearchParams): boolean {
    if (expectedTokenDigest === null) return true;
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    const match = /^bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    const given = match?.[1] ?? query.get('token');
    // Digests have equal lengths whatever was given, so timingSafeEqual never throws and
    // the time taken says nothing about the token.
    return given !== null && timingSafeEqual(sha256(given), expectedTokenDigest);
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    // By hand, not new URL(): "//host/x" must stay a path, and junk must not throw.
    const path = q === -1 ? url : url.slice(0, q);
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (route === undefined) return sendJson(res, 404, '{"error":"not found"}');
    const cors = applyCors(req, res);
    if (req.method === 'OPTIONS') {
      const headers: Record<string, string> = { Allow: ALLOW };
      if (cors) {
        headers['Access-Control-Allow-Methods'] = ALLOW;
        // Last-Event-ID: cross-origin EventSource reconnects send it; Authorization: fetch-based clients.
        headers['Access-Control-Allow-Headers'] = 'Authorization, Last-Event-ID, Cache-Control';
        headers['Access-Control-Max-Age'] = '600';
      }
      res.writeHead(204, headers).end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return sendJson(res, 405, '{"error":"method not allowed"}', { Allow: ALLOW });
    }
    const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
    if (route.protected && !authorized(req, query)) {
      return sendJson(res, 401, '{"error":"unauthorized"}', { 'WWW-Authenticate': 'Bearer realm="status-stream"' });
    }
    const result = route.handler(req, res, query);
    if (result instanceof Promise) result.catch((err: unknown) => failed(res, path, err));
  }

  // An unexpected error in one request: logged, answered 500 if nothing was sent yet,
  // else the connection is cut. The body never carries the error or a stack.
  function failed(res: ServerResponse, path: string, err: unknown): void {
    log.error('request failed', { path, err: err instanceof Error ? err : String(err) });
    if (!res.headersSent) sendJson(res, 500, '{"error":"internal error"}');
    else res.destroy();
  }

  const server = http.createServer({ noDelay: true }, (req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      failed(res, req.url?.split('?')[0] ?? '', err);
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: config.port, host: config.host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  log.info('listening', { address: address.address, port: address.port, url: `http://${urlHost}:${address.port}/`, version, node: process.version, config: redactedConfig(config) });

  let closed: Promise<void> | null = null;
  function shutdown(): Promise<void> {
    closed ??= new Promise<void>((resolve) => {
      draining = true;
      log.info('shutting down', { streams: hub.size, graceMs: config.shutdownGraceMs });
      const grace = setTimeout(() => {
        log.warn('shutdown grace ran out: closing what is left', { streams: hub.size });
        server.closeAllConnections();
        resolve();
      }, config.shutdownGraceMs);
      // server.close() stops accepting, closes idle keep-alive sockets, and calls back
      // once every connection has closed.
      server.close(() => {
        clearTimeout(grace);
        resolve();
      });
      poller.stop();
      hub.closeAll();
    });
    return closed;
  }

  return { server, hub, poller, port: address.port, url: `http://${urlHost}:${address.port}`, shutdown };
}

interface Page {
  readonly html: string;
  readonly headers: Record<string, string>;
}

// The page has one inline <style> and one inline <script>; the Content-Security-Policy
// allows exactly those by hash (CSP Level 3, "hash-source"), and nothing from elsewhere
// but the stream from this origin. Referrer-Policy keeps a ?token= out of any Referer.
function preparePage(html: string): Page {
  const hashes = (tag: string): string =>
    [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))]
      .map((m) => `'sha256-${createHash('sha256').update(m[1]).digest('base64')}'`)
      .join(' ') || "'none'";
  const csp = [
    "default-src 'none'", `script-src ${hashes('script')}`, `style-src ${hashes('style')}`,
    "connect-src 'self'", 'img-src data:', "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
  ].join('; ');
  return { html, headers: { 'Content-Security-Policy': csp, 'Referrer-Policy': 'no-referrer' } };
}

function readVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function firstHeader(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) || null;
}

/** The command line: config errors exit 2, a taken port exits 1, signals drain and exit 0. */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return;
  }
  let config: Config;
  try {
    config = parseConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(err.problems.join('\n') + '\n');
    process.exit(2);
  }
  const log = createLogger(config.logLevel);

  // Installed before listen(), so that no signal can find the process without them. As
  // PID 1 in a container a signal without a handler does nothing at all.
  let running: RunningServer | null = null;
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      log.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    signalled = true;
    log.info('signal received', { signal });
    if (running === null) process.exit(0); // nothing is served yet: nothing to drain
    void running.shutdown().then(() => {
      log.info('stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    running = await startServer(config, { log });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'EADDRINUSE' ? 'is already in use' : code === 'EACCES' ? 'needs privileges this process lacks' : `cannot be used (${String(code ?? err)})`;
    process.stderr.write(`status-stream: ${config.host}:${config.port} ${reason}\n`);
    process.exit(1);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void main(process.argv.slice(2), process.env);
}
