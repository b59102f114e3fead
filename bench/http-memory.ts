// bench/http-memory.ts: how much memory Node itself holds per open HTTP response, with no
// status-stream code at all, to tell a Node version's cost from ours. It starts a bare
// `node:http` server (this same file, --serve) on the Node under test, opens N raw TCP
// connections to it from this process, each a `GET /events` answered as an event stream
// that stays open, and reads the server from outside: VmRSS, and Rss of its mappings from
// /proc/PID/smaps (the brk heap `[heap]`, anonymous mappings, the rest), and from inside:
// process.memoryUsage() and V8's heap spaces, before and after forced garbage collections.
// Only 127.0.0.1; at most --connections sockets; the server is killed by its PID when the
// run ends, fails, or passes --deadline. Self-contained (node: modules only), so the file
// can be sent as it is with a report to Node.
//
//   node bench/http-memory.ts [--connections 10000] [--node PATH] [--mode sse|idle|net]
//       [--node-arg FLAG]... [--env NAME=VALUE]... [--option NAME=JSON]... [--no-delay]
//       [--release-parser] [--headers-timeout MS] [--request-timeout MS] [--checking-interval MS] [--settle 2000]
//       [--deadline 180] [--json]
//   (Node 20: node --import tsx bench/http-memory.ts ...; --node may be any Node >= 20)
//
// --mode sse: every request gets a 200 text/event-stream head and one event, and the
//     response stays open (what an SSE server does); idle: the request is never answered;
//     net: a `net` server reads the request head and writes the same bytes (no node:http).
// --option NAME=JSON: an option of http.createServer (highWaterMark=1024,
//     maxHeaderSize=8192, requireHostHeader=false, keepAlive=true, insecureHTTPParser=false).
// --no-delay: res.socket.setNoDelay(true) on every response.
// --release-parser: once the head is written, the connection gives its request parser back,
//     as Node does for an upgrade and status-stream does for a stream (http/connections.ts).
// --headers-timeout, --request-timeout, --checking-interval: server.headersTimeout,
//     server.requestTimeout, and the connectionsCheckingInterval option.
// Figures and what they showed: bench/README.md, "Memory per stream on Node 24".

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';

const HOST = '127.0.0.1';
const MAX_CONNECTIONS = 30_000;
/** Connections in flight while opening: below the listen backlog, so none is dropped and retried. */
const OPEN_CONCURRENCY = 500;
const REQUEST = (port: number): Buffer =>
  Buffer.from(
    `GET /events HTTP/1.1\r\nHost: ${HOST}:${port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n`,
  );
const EVENT = 'retry: 3000\n\nid: 1\ndata: {"status":"up"}\n\n';
const SSE_HEADERS = {
  'Content-Type': 'text/event-stream',
  'Cache-Control': 'no-cache, no-transform',
  Connection: 'keep-alive',
  'X-Accel-Buffering': 'no',
};

type Mode = 'sse' | 'idle' | 'net';

/** What the server reports about itself (process.memoryUsage and V8's heap spaces, bytes). */
interface Inside {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  newSpace: number;
  oldSpace: number;
  open: number;
}

/** RSS of the server's mappings by kind, bytes (/proc/PID/smaps). */
interface Outside {
  vmRss: number;
  brkHeap: number;
  anon: number;
  other: number;
}

interface Reading {
  outside: Outside;
  inside: Inside;
}

// --- the server (--serve), on the Node under test ---

function serve(): void {
  const mode = (process.env.HTTP_MEMORY_MODE ?? 'sse') as Mode;
  const options = JSON.parse(process.env.HTTP_MEMORY_OPTIONS ?? '{}') as http.ServerOptions;
  const tweaks = JSON.parse(process.env.HTTP_MEMORY_TWEAKS ?? '{}') as Record<string, number | boolean>;
  let open = 0;
  const server =
    mode === 'net'
      ? net.createServer((socket) => {
          open++;
          socket.on('close', () => open--);
          socket.once('data', () => socket.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n`));
          socket.on('error', () => socket.destroy());
        })
      : http.createServer(options, (_req, res) => {
          open++;
          res.on('close', () => open--);
          if (mode === 'idle') return;
          if (tweaks.noDelay === true) res.socket?.setNoDelay(true);
          res.writeHead(200, SSE_HEADERS);
          res.write(EVENT);
          if (tweaks.releaseParser === true && res.socket) setImmediate(releaseParser, res.socket);
        });
  if (server instanceof http.Server) {
    if (typeof tweaks.headersTimeout === 'number') server.headersTimeout = tweaks.headersTimeout;
    if (typeof tweaks.requestTimeout === 'number') server.requestTimeout = tweaks.requestTimeout;
  }
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on('message', (message: string) => {
    if (message === 'gc' && gc) {
      gc();
      gc();
    }
    const m = process.memoryUsage();
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.space_used_size]));
    const inside: Inside = {
      rss: m.rss,
      heapTotal: m.heapTotal,
      heapUsed: m.heapUsed,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      newSpace: spaces.new_space ?? 0,
      oldSpace: spaces.old_space ?? 0,
      open,
    };
    process.send?.(inside);
  });
  server.listen({ port: 0, host: HOST, backlog: 4096 }, () => {
    const address = server.address();
    process.send?.({ port: typeof address === 'object' && address ? address.port : 0, version: process.version });
  });
}

// Node's own release of a parser (lib/_http_common.js); undocumented, so looked up at use.
// http/connections.ts does the same for the service; copied, as this file uses no project code.
type FreeParser = (parser: object, req: null, socket: net.Socket) => void;

function releaseParser(socket: net.Socket): void {
  const common = process.getBuiltinModule?.('_http_common') as { freeParser?: FreeParser } | undefined;
  const parser = (socket as net.Socket & { parser?: object | null }).parser;
  if (!common?.freeParser || parser == null || socket.destroyed) return;
  socket.removeAllListeners('data');
  socket.removeAllListeners('end');
  common.freeParser(parser, null, socket);
  socket.on('data', () => socket.destroy());
  socket.on('end', () => socket.end());
}

// --- the parent: starts the server, opens the connections, reads the server ---

function smaps(pid: number): Outside {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const out: Outside = { vmRss: 0, brkHeap: 0, anon: 0, other: 0 };
  let kind: keyof Outside = 'other';
  for (const line of text.split('\n')) {
    // A mapping's header: "start-end perms offset dev inode [path]".
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (header) {
      const path = header[1] ?? '';
      kind = path === '[heap]' ? 'brkHeap' : path === '' ? 'anon' : 'other';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB$/.exec(line);
    if (rss) out[kind] += Number(rss[1]) * 1024;
  }
  const status = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  out.vmRss = Number(status?.[1] ?? 0) * 1024;
  return out;
}

function ask(child: ChildProcess, message: string): Promise<Inside> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as Inside));
    child.send(message);
  });
}

async function read(child: ChildProcess, message: 'now' | 'gc'): Promise<Reading> {
  const inside = await ask(child, message);
  return { outside: smaps(child.pid as number), inside };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls the server until it holds `n` requests (or responses), for at most 30 s. */
async function waitForOpen(child: ChildProcess, n: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await ask(child, 'now')).open < n) {
    if (Date.now() > deadline) throw new Error(`the server did not get all ${n} requests within 30 s`);
    await sleep(200);
  }
}

/** Opens `n` connections, each sending one request; resolves when every one has its first bytes back. */
function openConnections(port: number, n: number, mode: Mode): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  const request = REQUEST(port);
  let launched = 0;
  let done = 0;
  return new Promise((resolve, reject) => {
    const launch = (): void => {
      while (launched < n && launched - done < OPEN_CONCURRENCY) {
        launched++;
        const socket = net.connect({ host: HOST, port });
        sockets.push(socket);
        let answered = false;
        const finish = (): void => {
          if (answered) return;
          answered = true;
          done++;
          if (done === n) resolve(sockets);
          else setImmediate(launch);
        };
        socket.on('connect', () => {
          // An unanswered request (--mode idle) is done once written; waitForOpen() then
          // waits for the server to have read them all.
          socket.write(request, mode === 'idle' ? finish : undefined);
        });
        socket.on('data', finish);
        socket.on('error', (err) => reject(new Error(`connection ${sockets.length}: ${err.message}`)));
        socket.on('close', () => {
          if (!answered) reject(new Error('a connection closed before its answer'));
        });
      }
    };
    launch();
  });
}

interface Options {
  connections: number;
  node: string;
  mode: Mode;
  nodeArgs: string[];
  env: Record<string, string>;
  serverOptions: Record<string, unknown>;
  tweaks: Record<string, number | boolean>;
  deadlineS: number;
  /** Quiet time before each reading, so that the start-up and the connections have settled. */
  settleMs: number;
  json: boolean;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      connections: { type: 'string', default: '10000' },
      node: { type: 'string', default: process.execPath },
      mode: { type: 'string', default: 'sse' },
      'node-arg': { type: 'string', multiple: true, default: [] as string[] },
      env: { type: 'string', multiple: true, default: [] as string[] },
      option: { type: 'string', multiple: true, default: [] as string[] },
      'no-delay': { type: 'boolean', default: false },
      'release-parser': { type: 'boolean', default: false },
      'headers-timeout': { type: 'string' },
      'request-timeout': { type: 'string' },
      'checking-interval': { type: 'string' },
      deadline: { type: 'string', default: '180' },
      settle: { type: 'string', default: '2000' },
      json: { type: 'boolean', default: false },
      serve: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const fail = (message: string): never => {
    process.stderr.write(`http-memory: ${message}\n`);
    process.exit(2);
  };
  const int = (name: string, value: string | undefined, min: number, max: number): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) fail(`--${name} must be an integer ${min}-${max}, got ${value}`);
    return n;
  };
  const pairs = (list: string[], flag: string): [string, string][] =>
    list.map((pair) => {
      const eq = pair.indexOf('=');
      if (eq <= 0) fail(`--${flag} must be NAME=VALUE, got ${JSON.stringify(pair)}`);
      return [pair.slice(0, eq), pair.slice(eq + 1)];
    });
  const mode = values.mode;
  if (mode !== 'sse' && mode !== 'idle' && mode !== 'net') fail(`--mode must be sse, idle or net, got ${mode}`);
  const tweaks: Record<string, number | boolean> = {};
  if (values['no-delay']) tweaks.noDelay = true;
  if (values['release-parser']) tweaks.releaseParser = true;
  if (values['headers-timeout'] !== undefined) {
    tweaks.headersTimeout = int('headers-timeout', values['headers-timeout'], 0, 3_600_000);
  }
  if (values['request-timeout'] !== undefined) {
    tweaks.requestTimeout = int('request-timeout', values['request-timeout'], 0, 3_600_000);
  }
  const serverOptions: Record<string, unknown> = Object.fromEntries(
    pairs(values.option, 'option').map(([k, v]) => [k, JSON.parse(v) as unknown]),
  );
  if (values['checking-interval'] !== undefined) {
    serverOptions.connectionsCheckingInterval = int('checking-interval', values['checking-interval'], 1, 3_600_000);
  }
  return {
    connections: int('connections', values.connections, 1, MAX_CONNECTIONS),
    node: values.node,
    mode: mode as Mode,
    nodeArgs: values['node-arg'],
    env: Object.fromEntries(pairs(values.env, 'env')),
    serverOptions,
    tweaks,
    deadlineS: int('deadline', values.deadline, 10, 3600),
    settleMs: int('settle', values.settle, 0, 60_000),
    json: values.json,
  };
}

/** Node < 22.18 cannot run this .ts file itself; tsx can, with the same code. */
function loaderArgs(node: string): string[] {
  const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  const [major = 0, minor = 0] = version.slice(1).split('.').map(Number);
  const strips = major >= 24 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18);
  return strips ? [] : ['--import', 'tsx'];
}

const perConnection = (after: number, before: number, n: number): number => (after - before) / n / 1024;

function describe(o: Options): string {
  const parts = [
    ...o.nodeArgs,
    ...Object.entries(o.env).map(([k, v]) => `${k}=${v}`),
    ...Object.entries(o.serverOptions).map(([k, v]) => `${k}: ${JSON.stringify(v)}`),
    ...Object.entries(o.tweaks).map(([k, v]) => `${k}=${String(v)}`),
  ];
  return parts.length === 0 ? 'defaults' : parts.join(', ');
}

async function measure(o: Options): Promise<Record<string, unknown>> {
  const child = spawn(
    o.node,
    ['--expose-gc', ...o.nodeArgs, ...loaderArgs(o.node), fileURLToPath(import.meta.url), '--serve'],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: {
        ...process.env,
        ...o.env,
        HTTP_MEMORY_MODE: o.mode,
        HTTP_MEMORY_OPTIONS: JSON.stringify(o.serverOptions),
        HTTP_MEMORY_TWEAKS: JSON.stringify(o.tweaks),
      },
    },
  );
  const deadline = setTimeout(() => {
    process.stderr.write(`http-memory: deadline of ${o.deadlineS} s passed; killing the server (pid ${child.pid})\n`);
    if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    process.exit(1);
  }, o.deadlineS * 1000);
  const sockets: net.Socket[] = [];
  try {
    const hello = await new Promise<{ port: number; version: string }>((resolve, reject) => {
      child.once('message', (m) => resolve(m as { port: number; version: string }));
      child.once('exit', (code) => reject(new Error(`the server exited with code ${code}`)));
    });
    await sleep(o.settleMs);
    const before = await read(child, 'gc');
    sockets.push(...(await openConnections(hello.port, o.connections, o.mode)));
    await waitForOpen(child, o.connections);
    await sleep(o.settleMs);
    const held = await read(child, 'now');
    const heldAfterGc = await read(child, 'gc');
    if (heldAfterGc.inside.open !== o.connections) {
      throw new Error(`the server holds ${heldAfterGc.inside.open} of ${o.connections} connections`);
    }
    const n = o.connections;
    const row = (r: Reading) => ({
      vmRss: perConnection(r.outside.vmRss, before.outside.vmRss, n),
      brkHeap: perConnection(r.outside.brkHeap, before.outside.brkHeap, n),
      anon: perConnection(r.outside.anon, before.outside.anon, n),
      heapUsed: perConnection(r.inside.heapUsed, before.inside.heapUsed, n),
      heapTotal: perConnection(r.inside.heapTotal, before.inside.heapTotal, n),
      newSpace: perConnection(r.inside.newSpace, before.inside.newSpace, n),
      external: perConnection(r.inside.external, before.inside.external, n),
      arrayBuffers: perConnection(r.inside.arrayBuffers, before.inside.arrayBuffers, n),
    });
    return {
      node: hello.version,
      mode: o.mode,
      lever: describe(o),
      connections: n,
      held: row(held),
      afterGc: row(heldAfterGc),
      before: before.outside,
      total: held.outside,
    };
  } finally {
    clearTimeout(deadline);
    for (const s of sockets) s.destroy();
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  }
}

async function main(): Promise<void> {
  const o = options();
  const r = await measure(o);
  if (o.json) {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  const f = (x: number): string => x.toFixed(2).padStart(6);
  const columns = ['vmRss', 'brkHeap', 'anon', 'heapUsed', 'heapTotal', 'newSpace', 'external', 'arrayBuffers'];
  const line = (label: string, x: Record<string, number>): string =>
    `${label.padEnd(9)} ${columns.map((c) => f(x[c] ?? 0)).join(' ')}`;
  process.stdout.write(
    `Node ${String(r.node)}, ${r.connections} connections, mode ${String(r.mode)}, ${String(r.lever)}\n` +
      'KiB/conn    VmRSS [heap]   anon  V8used V8total   new  extern  arrbuf\n' +
      `${line('held', r.held as Record<string, number>)}\n${line('after gc', r.afterGc as Record<string, number>)}\n`,
  );
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain && process.argv.includes('--serve')) serve();
else if (isMain) {
  main().catch((err: unknown) => {
    process.stderr.write(`http-memory: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
