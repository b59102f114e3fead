// http/connections.ts: what a connection may cost before it is a request: a cap on open
// connections below the descriptor limit, a deadline for the request head and body, no
// request parser until its first bytes arrive, a cap on pipelined requests, and accept
// errors (EMFILE) that are logged, never fatal; and what it costs once it is a stream: its
// request parser is given back.

import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../log.ts';

/** A request body (a write) must have arrived within this. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** A connection that has more requests than this waiting for their answers is closed. */
export const MAX_PIPELINED = 16;
// Node checks header and request deadlines on a timer (Node docs, http.createServer,
// connectionsCheckingInterval; 30 s by default): a silent socket lives up to this past its deadline.
const DEADLINE_CHECK_MS = 1000;
const ACCEPT_ERROR_LOG_MS = 1000;

export interface ConnectionLimits {
  readonly maxConnections: number | null;
  readonly headersTimeoutMs: number;
}

export interface ConnectionStats {
  /** Connections closed at once because MAX_CONNECTIONS were open. */
  rejected: number;
}

/** Options for http.createServer that put deadlines on every connection. */
export function serverOptions(limits: ConnectionLimits): ServerOptions {
  return {
    // Nagle would hold a small frame back for up to 200 ms waiting for more (RFC 896).
    noDelay: true,
    headersTimeout: limits.headersTimeoutMs,
    // Node refuses a headersTimeout larger than requestTimeout.
    requestTimeout: Math.max(REQUEST_TIMEOUT_MS, limits.headersTimeoutMs),
    connectionsCheckingInterval: DEADLINE_CHECK_MS,
  };
}

/**
 * Caps connections (Node closes those past server.maxConnections at once and emits 'drop'),
 * logs accept errors at most once a second (an 'error' without a listener would end the
 * process), and returns the counters.
 */
export function guardConnections(server: Server, limits: ConnectionLimits, log: Logger): ConnectionStats {
  const stats: ConnectionStats = { rejected: 0 };
  if (limits.maxConnections !== null) server.maxConnections = limits.maxConnections;
  let lastDropLogMs = 0;
  server.on('drop', () => {
    stats.rejected++;
    const now = Date.now();
    if (now - lastDropLogMs < ACCEPT_ERROR_LOG_MS) return;
    lastDropLogMs = now;
    log.warn('connection refused: MAX_CONNECTIONS open', {
      maxConnections: limits.maxConnections,
      rejected: stats.rejected,
    });
  });
  let lastErrorLogMs = 0;
  server.on('error', (err: NodeJS.ErrnoException) => {
    // Before listening, an error is the caller's to report (the port is taken).
    if (!server.listening) return;
    const now = Date.now();
    if (now - lastErrorLogMs < ACCEPT_ERROR_LOG_MS) return;
    lastErrorLogMs = now;
    log.error('accepting a connection failed', { code: err.code, syscall: err.syscall });
  });
  return stats;
}

/** Connections accepted whose first bytes have not arrived: they hold no parser yet. */
export interface UnreadConnections {
  /** Closes those that have still sent nothing after the next poll: a shutdown has no use for them. */
  closeAll(): void;
}

/**
 * Hands each connection to Node's HTTP server when its first bytes arrive, not when it is
 * accepted. Node takes a request parser for every connection it is handed (made when its
 * pool is empty: 10 KiB from Node 24.14 on). In a storm of reconnects thousands are accepted
 * in one turn of the event loop before any is read, and the parsers made for them stay, in
 * Node's pool or as malloc's pages. Handed over as they are read, each connection is parsed
 * and answered, and a stream gives its parser back, before the next one is read: a storm
 * takes one parser (bench/README.md, "the storm the streams open in").
 *
 * Until then Node's header deadline does not see the connection, so this one does: a
 * connection without a request headersTimeoutMs after it was accepted is closed, as Node
 * would close it, also when its first bytes came and the rest did not. An `end` or an error
 * before any byte closes it too, as Node's server would.
 */
export function parseFromFirstBytes(server: Server, headersTimeoutMs: number): UnreadConnections {
  const handOver = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  const unread = new Set<Socket>();
  // Each connection's deadline, cleared by its first request or its close.
  const deadlines = new Map<Socket, () => void>();
  server.on('connection', (socket: Socket) => {
    const timer = setTimeout(() => socket.destroy(), headersTimeoutMs);
    const clear = (): void => {
      clearTimeout(timer);
      deadlines.delete(socket);
      unread.delete(socket);
    };
    deadlines.set(socket, clear);
    unread.add(socket);
    const close = (): void => {
      socket.destroy();
    };
    socket.once('close', clear);
    socket.on('error', close);
    socket.once('end', close);
    socket.once('data', (chunk: Buffer) => {
      unread.delete(socket);
      socket.off('error', close);
      socket.off('end', close);
      // Node reads what follows itself (its parser consumes the socket); the first chunk goes
      // back into the stream, which it reads once resumed.
      socket.pause();
      socket.unshift(chunk);
      for (const listener of handOver) listener.call(server, socket);
      process.nextTick(() => socket.resume());
    });
  });
  server.prependListener('request', (req: IncomingMessage) => {
    const clear = deadlines.get(req.socket);
    if (clear === undefined) return;
    clear();
    req.socket.off('close', clear);
  });
  return {
    closeAll() {
      // After the event loop's next poll, so that a request already sent is read and handed
      // over (Node then keeps it as one in flight) rather than cut unread.
      setImmediate(() =>
        setImmediate(() => {
          for (const socket of unread) socket.destroy();
        }),
      );
    },
  };
}

const waiting = new WeakMap<Socket, number>();

/**
 * Counts the requests of a connection that wait for their answers; past MAX_PIPELINED the
 * connection is closed. Returns false when it was.
 */
export function admitPipelined(req: IncomingMessage, res: ServerResponse): boolean {
  const socket = req.socket;
  const count = (waiting.get(socket) ?? 0) + 1;
  if (count > MAX_PIPELINED) {
    socket.destroy();
    return false;
  }
  waiting.set(socket, count);
  res.once('close', () => waiting.set(socket, (waiting.get(socket) ?? 1) - 1));
  return true;
}

type FreeParser = (parser: object, req: null, socket: Socket) => void;

// Node's own release of a connection's parser (lib/_http_common.js), what its server does when
// a connection is upgraded. Not a documented API: looked up once, and where a Node does not
// have it, streams simply keep their parsers.
const freeParser = (process.getBuiltinModule?.('_http_common') as { freeParser?: FreeParser } | undefined)?.freeParser;

/** Whether this Node lets a stream's connection give its request parser back. */
export const canReleaseParser = typeof freeParser === 'function';

/**
 * Gives back the request parser of a connection that now carries a stream, once the code
 * that read its request has returned (process.nextTick: the parser may still be on the
 * stack until then), before the next connection is read. Node keeps a parser per
 * connection, for its next request, until the connection closes; a stream's connection has
 * no next request, and from Node 24.14 on each parser holds an 8 KiB slab: 5.7 KiB of RSS
 * per stream (bench/README.md, "Memory per stream on Node 24").
 *
 * As Node does for an upgrade, the server's 'data' and 'end' listeners go with the parser,
 * so that no byte of this connection can reach the parser once another connection reuses
 * it. From then on the client has nothing more to say: a byte from it closes the connection
 * (a request behind a stream would never be answered), and its FIN ends the connection, as
 * Node's server ends it.
 */
export function releaseParser(socket: Socket): void {
  if (canReleaseParser) process.nextTick(release, socket);
}

function release(socket: Socket): void {
  const parser = (socket as Socket & { parser?: object | null }).parser;
  if (parser == null || socket.destroyed || freeParser === undefined) return;
  socket.removeAllListeners('data');
  socket.removeAllListeners('end');
  freeParser(parser, null, socket);
  socket.on('data', () => socket.destroy());
  socket.on('end', () => socket.end());
}
