// tests/helpers.ts: what the suites share: starting the service (in this process or as
// a child process, always on 127.0.0.1 and a free port), reading an SSE stream over a
// raw HTTP request, and deadlines, so that a regression fails fast with a message
// instead of idling until the runner's timeout.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { type SseEvent as ParsedEvent, SseParser } from '../bench/sse-parser.ts';
import { parseConfig } from '../config.ts';
import { createLogger } from '../log.ts';
import { type RunningServer, startServer } from '../server.ts';
import { type EventFilter, type HubOptions, parseEventFilter, SseHub } from '../sse.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Set in CI: tests that need nginx, chromium or Node 24 fail instead of skipping. */
export const REQUIRE_E2E = process.env.REQUIRE_E2E === '1';

/** Rejects with "`what` took longer than `ms` ms" unless `promise` settles first. */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 20 ms until it holds, or fails after `ms`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`waited ${ms} ms for ${what}`);
    await sleep(20);
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

const tempDirs: string[] = [];
process.once('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A new directory `status-stream-<name>-XXXXXX` under the OS temp dir, removed when the process exits. */
export function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `status-stream-${name}-`));
  tempDirs.push(dir);
  return dir;
}

/**
 * Skip reason for a test that needs `path`, or undefined to run it. With REQUIRE_E2E=1
 * a missing program is not a reason to skip: the test runs and fails.
 */
export function skipUnless(path: string, what: string): string | undefined {
  if (existsSync(path) || REQUIRE_E2E) return undefined;
  return `${what} not found at ${path} (install it, or run with REQUIRE_E2E=1 to fail instead)`;
}

// ---------------------------------------------------------------- in-process server

export interface InProcess extends RunningServer {
  /** Every log line, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** Starts the service in this process (fast, and what coverage sees most directly). */
export async function startInProcess(
  env: Record<string, string> = {},
  page = '<!doctype html><title>t</title>',
): Promise<InProcess> {
  const config = parseConfig({ HOST: '127.0.0.1', PORT: '0', ...env });
  const logs: Array<Record<string, unknown>> = [];
  const log = createLogger(config.logLevel, (line) => logs.push(JSON.parse(line) as Record<string, unknown>));
  const running = await startServer(config, { log, page, version: 'test' });
  return Object.assign(running, {
    logs,
    close: async () => {
      await withDeadline(running.shutdown(), config.shutdownGraceMs + 5000, 'shutdown');
      running.poller.stop();
    },
  });
}

// ---------------------------------------------------------------- child-process server

export interface Service {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly child: ChildProcess;
  /** stdout lines so far. */
  readonly logs: string[];
  readonly stderr: string[];
  /** Sends `signal` (SIGTERM by default) and resolves with the exit code; SIGKILLs after 10 s. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Resolves with the exit code when the process exits. */
  readonly exited: Promise<number | null>;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children)
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
});

/**
 * Spawns the service as its own process: `node --import tsx server.ts` (Node 20), or
 * `<node> server.ts` when `options.node` is given (Node >= 22.18 strips types itself).
 * Resolves once the start-up log names the bound port.
 */
export interface ServiceOptions {
  /** A Node >= 22.18 binary that runs server.ts itself; tsx on this Node by default. */
  readonly node?: string;
  /** Flags for node itself (V8's among them), before the script. */
  readonly nodeArgs?: readonly string[];
  /** Arguments for server.ts, after it. */
  readonly args?: readonly string[];
  /** Starts it under this soft and hard limit on open files (a shell's `ulimit -n`, then exec). */
  readonly nofile?: number;
}

export async function startService(env: Record<string, string> = {}, options: ServiceOptions = {}): Promise<Service> {
  const args = [...(options.nodeArgs ?? []), ...(options.node ? [] : ['--import', 'tsx']), 'server.ts'];
  const childEnv: NodeJS.ProcessEnv = { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env };
  // Coverage comes from the tsx runs only: c8 merges the raw V8 ranges of each file across
  // processes, and another Node's type-stripped code has other ranges for the same URL.
  // Deleting the variable is not enough (child_process puts it back), so it points elsewhere.
  if (options.node && childEnv.NODE_V8_COVERAGE)
    childEnv.NODE_V8_COVERAGE = join(tmpdir(), 'status-stream-node24-coverage');
  const command = [options.node ?? process.execPath, ...args, ...(options.args ?? [])];
  // exec: the shell is replaced, so the PID is the service's and signals reach it.
  const [file, ...argv] =
    options.nofile === undefined
      ? command
      : ['/bin/sh', '-c', `ulimit -n ${options.nofile} && exec "$@"`, 'sh', ...command];
  const child = spawn(file, argv, {
    cwd: ROOT,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const logs: string[] = [];
  const stderr: string[] = [];
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  let buffered = '';
  const listening = new Promise<number>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      buffered += text;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        logs.push(line);
        if (line.includes('"msg":"listening"')) resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (text: string) => stderr.push(text));
    void exited.then((code) => reject(new Error(`service exited with ${code} before listening: ${stderr.join('')}`)));
  });
  const port = await withDeadline(listening, 20_000, 'service start-up');
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, signal);
    const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid!, 'SIGKILL'), 10_000);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };
  return { url: `http://127.0.0.1:${port}`, port, pid: child.pid!, child, logs, stderr, stop, exited };
}

/** Runs `node --import tsx server.ts` to its end with `env`; for config errors and --help. */
export function runToExit(
  env: Record<string, string>,
  args: string[] = [],
  timeoutMs = 20_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return withDeadline(
    new Promise((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'server.ts', ...args], {
        cwd: ROOT,
        env: { ...process.env, HOST: '127.0.0.1', PORT: '0', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(child);
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
      child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
      child.once('exit', (code) => {
        children.delete(child);
        resolve({ code, stdout, stderr });
      });
      setTimeout(() => child.exitCode === null && child.kill('SIGKILL'), timeoutMs).unref();
    }),
    timeoutMs + 1000,
    'server run',
  );
}

// ---------------------------------------------------------------- a check target and a webhook receiver

/** An HTTP server of the tests' own; `close()` also ends connections still waiting for an answer. */
abstract class LocalServer {
  abstract readonly server: http.Server;

  /** `http://127.0.0.1:<port>`, once started. */
  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

async function listening<T extends LocalServer>(local: T): Promise<T> {
  await new Promise<void>((resolve) => local.server.listen(0, '127.0.0.1', resolve));
  return local;
}

/** How the target answers one request: `body` is 'ok' and `delayMs` 0 unless given; a 204 has no body. */
export interface TargetAnswer {
  readonly code: number;
  readonly body?: string;
  readonly delayMs?: number;
}

/** One answer the target gave, noted when it was sent. */
export interface Served {
  readonly path: string;
  readonly code: number;
  readonly atMs: number;
}

/**
 * A local HTTP server on 127.0.0.1 for checks to watch. A path set in `answers` gets that
 * answer; any other path gets `fallback(path, hit)`, where `hit` counts this path's requests
 * from 1 (200 'ok' by default). It counts requests by path as they arrive, notes every
 * answer in `served`, and keeps the number of requests not answered yet.
 */
export class Target extends LocalServer {
  readonly answers = new Map<string, TargetAnswer>();
  readonly served: Served[] = [];
  inFlight = 0;
  /** The most requests open at once; a test may reset it. */
  maxInFlight = 0;
  readonly server: http.Server;
  readonly #hits = new Map<string, number>();

  constructor(fallback: (path: string, hit: number) => TargetAnswer = () => ({ code: 200 })) {
    super();
    this.server = http.createServer((req, res) => {
      const path = req.url ?? '/';
      const hit = this.hits(path) + 1;
      this.#hits.set(path, hit);
      const { code, body = 'ok', delayMs = 0 } = this.answers.get(path) ?? fallback(path, hit);
      this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
      const answer = (): void => {
        this.inFlight--;
        this.served.push({ path, code, atMs: Date.now() });
        res.writeHead(code, { 'content-type': 'text/plain' }).end(code === 204 ? undefined : body);
      };
      if (delayMs > 0) setTimeout(answer, delayMs);
      else answer();
    });
  }

  /** Requests that have arrived for `path`. */
  hits(path: string): number {
    return this.#hits.get(path) ?? 0;
  }
}

/** Starts a Target (see there) on 127.0.0.1 and a free port. */
export const startTarget = (fallback?: (path: string, hit: number) => TargetAnswer): Promise<Target> =>
  listening(new Target(fallback));

/** One request a Receiver took in, its body read whole. */
export interface Delivery {
  /** The request target as sent: path and query. */
  readonly path: string;
  readonly method: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  readonly atMs: number;
}

/** Answers a delivery; `seen` counts those in `received` with its path, this one included. */
export type Respond = (delivery: Delivery, res: http.ServerResponse, seen: number) => void;

/**
 * A local webhook receiver: keeps every request in `received` (a test may empty it), then
 * lets `respond` answer (200 'ok' by default), or not answer at all.
 */
export class Receiver extends LocalServer {
  readonly received: Delivery[] = [];
  readonly server: http.Server;

  constructor(respond: Respond = (_delivery, res) => res.end('ok')) {
    super();
    this.server = http.createServer((req, res) => {
      let body = '';
      req
        .setEncoding('utf8')
        .on('data', (chunk: string) => (body += chunk))
        .on('end', () => {
          const path = req.url ?? '';
          const delivery = { path, method: req.method ?? '', headers: req.headers, body, atMs: Date.now() };
          this.received.push(delivery);
          respond(delivery, res, this.received.filter((d) => d.path === path).length);
        });
    });
  }
}

/** Starts a Receiver (see there) on 127.0.0.1 and a free port. */
export const startReceiver = (respond?: Respond): Promise<Receiver> => listening(new Receiver(respond));

// ---------------------------------------------------------------- HTTP and SSE clients

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions extends http.RequestOptions {
  /** Sent whole, so with its Content-Length (as curl sends a body); none by default. */
  readonly body?: string | Buffer;
}

/** One request with a deadline; the whole body is read. */
export function request(url: string, options: RequestOptions = {}, deadlineMs = 10_000): Promise<Reply> {
  const { body, ...rest } = options;
  return withDeadline(
    new Promise((resolve, reject) => {
      const req = http.request(url, { agent: false, ...rest }, (res) => {
        let body = '';
        res
          .setEncoding('utf8')
          .on('data', (chunk: string) => (body += chunk))
          .on('end', () => {
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
          });
      });
      req.on('error', reject);
      req.end(body);
    }),
    deadlineMs,
    `${options.method ?? 'GET'} ${url}`,
  );
}

/**
 * The value of one sample in a GET /metrics body, named with its labels as written there
 * (`sse_clients`, `status_alerts_total{result="sent"}`); `absent` (NaN unless given) when
 * there is no such line, as for a per-check counter before its first count.
 */
export function metricValue(body: string, sample: string, absent = Number.NaN): number {
  const line = body.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? absent : Number(line.slice(sample.length + 1));
}

/**
 * One block of a stream, as SseClient saw it: an event that EventSource would dispatch
 * (`data`; `event` unless its type is "message"; `id` = its lastEventId, which persists
 * across events), or a block that dispatches nothing but held a `retry:` or a comment.
 */
export interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
  retry?: number;
  comment?: string;
  /** Date.now() when the block was complete. */
  at: number;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * A raw SSE client: one GET over node:http, its body interpreted by bench/sse-parser.ts (the
 * WHATWG rules, written independently of sse.ts and tested on every byte split), kept as
 * blocks in arrival order. The body is fed to the parser one line at a time (lines end with
 * LF on our wire), so that a block's retry and comment are known before the next block.
 */
export class SseClient {
  readonly blocks: SseEvent[] = [];
  raw = '';
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  ended = false;
  readonly req: http.ClientRequest;
  readonly response: Promise<void>;
  readonly closed: Promise<void>;
  readonly #parser = new SseParser((event) => this.#dispatched(event));
  readonly #text = new StringDecoder('utf8');
  #line: Buffer[] = [];
  #block: { retry?: number; comment?: string } = {};

  constructor(url: string, headers: Record<string, string> = {}) {
    let onResponse!: () => void;
    let onFail!: (err: Error) => void;
    this.response = new Promise((resolve, reject) => {
      onResponse = resolve;
      onFail = reject;
    });
    let onClosed!: () => void;
    this.closed = new Promise((resolve) => {
      onClosed = resolve;
    });
    this.req = http.get(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      this.status = res.statusCode ?? 0;
      this.headers = res.headers;
      onResponse();
      res.on('data', (chunk: Buffer) => this.#feed(chunk));
      res.on('end', () => {
        this.ended = true;
      });
      res.on('close', onClosed);
      res.on('error', () => {});
    });
    this.req.on('error', (err) => {
      onFail(err);
      onClosed();
    });
  }

  /** Data events (blocks with data), in order. */
  get events(): SseEvent[] {
    return this.blocks.filter((b) => b.data !== undefined);
  }

  #feed(chunk: Buffer): void {
    this.raw += this.#text.write(chunk);
    let start = 0;
    for (let lf = chunk.indexOf(LF); lf !== -1; lf = chunk.indexOf(LF, start)) {
      this.#line.push(chunk.subarray(start, lf + 1));
      start = lf + 1;
      const line = this.#line.length === 1 ? (this.#line[0] as Buffer) : Buffer.concat(this.#line);
      this.#line = [];
      this.#endOfLine(line);
    }
    if (start < chunk.length) this.#line.push(chunk.subarray(start));
  }

  #endOfLine(line: Buffer): void {
    const parser = this.#parser;
    parser.feed(line);
    if (parser.retryMs !== -1) {
      this.#block.retry = parser.retryMs;
      parser.retryMs = -1;
    }
    if (parser.comments > 0) {
      parser.comments = 0;
      this.#block.comment = line
        .toString('utf8', 1)
        .replace(/^ /, '')
        .replace(/\r?\n$/, '');
    }
    // A blank line that dispatched nothing still ends a block with a retry or a comment.
    const blank = line.length === 1 || (line.length === 2 && line[0] === CR);
    if (blank && (this.#block.retry !== undefined || this.#block.comment !== undefined)) {
      this.blocks.push({ ...this.#block, at: Date.now() });
      this.#block = {};
    }
  }

  #dispatched(event: ParsedEvent): void {
    const block: SseEvent = { ...this.#block, data: event.data, at: Date.now() };
    if (event.type !== 'message') block.event = event.type;
    if (event.lastEventId !== '') block.id = event.lastEventId;
    this.blocks.push(block);
    this.#block = {};
  }

  /** Waits until `count` blocks match `predicate`; returns them. */
  async waitFor(predicate: (b: SseEvent) => boolean, count = 1, ms = 10_000, what = 'events'): Promise<SseEvent[]> {
    await waitFor(() => this.blocks.filter(predicate).length >= count, ms, `${count} ${what}`);
    return this.blocks.filter(predicate);
  }

  async waitForEvents(count: number, ms = 10_000): Promise<SseEvent[]> {
    return this.waitFor((b) => b.data !== undefined, count, ms, 'data events');
  }

  close(): void {
    this.req.destroy();
  }
}

/** Opens a stream and waits for its response head. */
export async function openStream(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const client = new SseClient(url, headers);
  await withDeadline(client.response, 10_000, `opening ${url}`);
  return client;
}

export interface HubServer {
  readonly hub: SseHub;
  readonly server: http.Server;
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/**
 * The hub alone behind a plain node:http server on 127.0.0.1, for transport tests: any GET
 * opens a stream with its Last-Event-ID (header, else ?lastEventId=) and ?events= filter;
 * a bad filter is a 400, a full hub a 503, and a queued request gets no answer.
 */
export async function startHubServer(options: Partial<HubOptions> = {}): Promise<HubServer> {
  const hub = new SseHub({
    retryMs: 1000,
    heartbeatMs: 0,
    replaySize: 100,
    maxClients: 100,
    maxBufferedBytes: 1 << 20,
    ...options,
  });
  const server = http.createServer((req, res) => {
    const query = new URL(req.url ?? '/', 'http://127.0.0.1').searchParams;
    let events: EventFilter;
    try {
      events = parseEventFilter(query.get('events'));
    } catch (err) {
      res.writeHead(400).end((err as Error).message);
      return;
    }
    const header = req.headers['last-event-id'];
    const lastEventId = (Array.isArray(header) ? header[0] : header) ?? query.get('lastEventId');
    if (hub.open(res, { lastEventId, events }) === 'full') res.writeHead(503).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    hub,
    server,
    port,
    url: `http://127.0.0.1:${port}/`,
    close: () => {
      hub.closeAll();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
