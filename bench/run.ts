// bench/run.ts: `npm run bench`. Measures what status-stream exists for (holding many
// streams and delivering each status to all of them at once) against two other servers in
// the same run, so that every figure also stands as a ratio, which a noisy machine moves
// much less than the figure itself: a naive baseline (bench/naive-server.ts, the card done
// the obvious way) and a floor (bench/floor-server.ts, the least any Node server can do per
// event: one shared Buffer written to every socket, no node:http after the request head).
//
// For each server in turn: start it as its own process on a free 127.0.0.1 port, start
// bench/loadgen.ts as another process, and sample the server from outside, from /proc
// (VmRSS; utime and stime; its open descriptors), at the moments the load generator
// reports. status-stream runs with the node flags of `npm start`. Every child is killed by
// its PID at the end, on error and on SIGINT. Prints a table and writes JSON. Only ever
// talks to 127.0.0.1; a default run takes about three and a half minutes.
//
//   npm run bench -- [--clients 10000] [--interval 1000] [--seconds 20] [--only status-stream|naive|floor]
//       [--out bench/results/latest.json] [--concurrency 2000] [--heartbeat MS] [--after 30]
//       [--cpu-prof] [--node PATH] [--browser-headers] [--repeat 1]
//       [--node-arg=--max-semi-space-size=2] [--server-env NAME=VALUE] [--server-dir DIR] [--server-script FILE]
//
// --clients, --interval, --seconds: streams, event interval (STATUS_INTERVAL_MS), length of
//     the steady window over which CPU, latency and delivery are measured.
// --concurrency: connections the load generator has in flight while opening (above Node's
//     default listen backlog of 511 on purpose: that is what thousands of reconnecting
//     browsers do).
// --after: how long to watch RSS come back after the clients leave (default 30 s). V8 gives
//     memory back from its memory reducer, whose timer runs every 8 s and which waits for
//     a quiet mutator: here that was 13 s after the clients left in some runs, 21 s in
//     others, so 20 s would cut the second case off.
// --browser-headers: each request also carries the dozen headers Chrome sends with an
//     EventSource request (the server holds them as long as the stream is open).
// --cpu-prof: profile the servers (node --cpu-prof) and print where the steady window's
//     time went; bench/profile.ts reads the .cpuprofile files again, and writes folded stacks.
// --repeat N: run every server N times, taking turns, and report the median of each figure
//     (the JSON keeps every run); p99 latency and CPU by run are printed under the table.
// --table FILE: print the table of an earlier run's JSON again, and run nothing.
// --node: the Node binary that runs the servers (>= 22.18 runs `node server.ts` directly).
// --node-arg, --server-env, --server-dir, --server-script apply to status-stream only:
//     they try a change (a V8 flag, a scratch copy of the repo) against the same baseline.
// Figures and what they mean: README.md, "Performance".

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { createInterface } from 'node:readline';
import { dirname, join, resolve, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { intFlag } from './flags.ts';
import os from 'node:os';
import { summarize, formatSummary, type CpuProfile } from './profile.ts';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_DIR = resolve(BENCH_DIR, '..');
const HOST = '127.0.0.1';

/** How long a server may take to answer /healthz after it is started. */
const START_TIMEOUT_MS = 20_000;
/** Quiet time after start-up before the "before" sample, so start-up work is not counted. */
const IDLE_BEFORE_MS = 1500;
/** How long the server may take to close every socket after the clients leave. */
const RELEASE_TIMEOUT_MS = 30_000;
const RELEASE_POLL_MS = 10;
const RSS_POLL_MS = 250;
const STOP_TIMEOUT_MS = 8000;

const { values: flags } = parseArgs({
  options: {
    clients: { type: 'string', default: '10000' },
    interval: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '20' },
    only: { type: 'string' },
    out: { type: 'string', default: join(BENCH_DIR, 'results', 'latest.json') },
    concurrency: { type: 'string', default: '2000' },
    heartbeat: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'node-arg': { type: 'string', multiple: true, default: [] },
    'server-dir': { type: 'string', default: REPO_DIR },
    'server-script': { type: 'string', default: 'server.ts' },
    'server-env': { type: 'string', multiple: true, default: [] },
    node: { type: 'string', default: process.execPath },
    'browser-headers': { type: 'boolean', default: false },
    repeat: { type: 'string', default: '1' },
    after: { type: 'string', default: '30' },
    table: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (flags.help) {
  const source = readFileSync(fileURLToPath(import.meta.url), 'utf8');
  process.stdout.write(`${source.slice(0, source.indexOf('\nimport '))}\n`);
  process.exit(0);
}

const CLIENTS = intFlag('bench', 'clients', flags.clients, 1, 50_000);
const INTERVAL_MS = intFlag('bench', 'interval', flags.interval, 100, 60_000);
const SECONDS = intFlag('bench', 'seconds', flags.seconds, 1, 600);
const REPEAT = intFlag('bench', 'repeat', flags.repeat, 1, 20);
const CONCURRENCY = intFlag('bench', 'concurrency', flags.concurrency, 1, 50_000);
const HEARTBEAT_MS = flags.heartbeat === undefined ? undefined : intFlag('bench', 'heartbeat', flags.heartbeat, 0, 3_600_000);
const SERVER_DIR = resolve(flags['server-dir']);
/** How long after the clients leave RSS is watched for its return to near the start. */
const AFTER_MAX_MS = intFlag('bench', 'after', flags.after, 0, 600) * 1000;
/** "Near the start": RSS at most this many times its value before the clients came. */
const NEAR_START_FACTOR = 1.5;
const NODE_ARGS = flags['node-arg'];
/** The Node that runs both servers (the load generator runs on this one). */
const SERVER_NODE = resolve(flags.node);
const SERVER_NODE_VERSION = execFileSync(SERVER_NODE, ['--version'], { encoding: 'utf8' }).trim();
// Node >= 22.18 (and 23.6) strips erasable types itself: `node server.ts`, as in the image.
const NATIVE_TS = ((): boolean => {
  const [major = 0, minor = 0] = SERVER_NODE_VERSION.slice(1).split('.').map(Number);
  return major >= 24 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18);
})();
const LOADER_ARGS = NATIVE_TS ? [] : ['--import', 'tsx'];
const SERVER_ENV: Record<string, string> = {};
for (const pair of flags['server-env']) {
  const eq = pair.indexOf('=');
  if (eq <= 0) {
    process.stderr.write(`bench: --server-env must be NAME=VALUE, got ${JSON.stringify(pair)}\n`);
    process.exit(2);
  }
  SERVER_ENV[pair.slice(0, eq)] = pair.slice(eq + 1);
}

/**
 * The node flags of `npm start` in `dir` (package.json), written as --flag or --flag=value,
 * so that the bench runs the service as it is shipped. tsx's --import is added anyway.
 */
function startNodeArgs(dir: string): string[] {
  let start = '';
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
    start = pkg.scripts?.start ?? '';
  } catch {
    return [];
  }
  const tokens = start.trim().split(/\s+/);
  if (tokens[0] !== 'node') return [];
  const args: string[] = [];
  for (let i = 1; i < tokens.length; i++) {
    const token = tokens[i] as string;
    if (token === '--import' && tokens[i + 1] === 'tsx') {
      i++;
      continue;
    }
    if (token === '--import=tsx') continue;
    if (!token.startsWith('-')) break; // the script
    args.push(token);
  }
  return args;
}

interface ServerSpec {
  name: string;
  cwd: string;
  script: string;
  rounds: 'shared' | 'per-client';
  env: Record<string, string>;
  nodeArgs: string[];
}

// Configuration variables of status-stream (SPEC §2): removed from the inherited
// environment so that a developer's shell cannot change what the bench measures.
const CONFIG_VARS = [
  'PORT', 'HOST', 'STATUS_INTERVAL_MS', 'CHECKS', 'CHECK_TIMEOUT_MS', 'HEARTBEAT_MS', 'RETRY_MS', 'HISTORY_SIZE',
  'MAX_CLIENTS', 'MAX_BUFFERED_BYTES', 'CORS_ORIGIN', 'AUTH_TOKEN', 'SHUTDOWN_GRACE_MS', 'LOG_LEVEL', 'NODE_OPTIONS',
];

const ALL_SERVERS: ServerSpec[] = [
  {
    name: 'status-stream',
    cwd: SERVER_DIR,
    script: flags['server-script'],
    rounds: 'shared',
    env: {
      STATUS_INTERVAL_MS: String(INTERVAL_MS),
      LOG_LEVEL: 'warn',
      MAX_CLIENTS: String(CLIENTS + 1000),
      ...(HEARTBEAT_MS === undefined ? {} : { HEARTBEAT_MS: String(HEARTBEAT_MS) }),
      ...SERVER_ENV,
    },
    nodeArgs: [...startNodeArgs(SERVER_DIR), ...NODE_ARGS],
  },
  {
    name: 'naive',
    cwd: REPO_DIR,
    script: join('bench', 'naive-server.ts'),
    rounds: 'per-client',
    env: { STATUS_INTERVAL_MS: String(INTERVAL_MS) },
    nodeArgs: [],
  },
  {
    name: 'floor',
    cwd: REPO_DIR,
    script: join('bench', 'floor-server.ts'),
    rounds: 'shared',
    env: { STATUS_INTERVAL_MS: String(INTERVAL_MS) },
    nodeArgs: [],
  },
];

if (flags.only !== undefined && !ALL_SERVERS.some((s) => s.name === flags.only)) {
  process.stderr.write(`bench: --only must be one of ${ALL_SERVERS.map((s) => s.name).join(', ')}, got ${JSON.stringify(flags.only)}\n`);
  process.exit(2);
}
const SERVERS = ALL_SERVERS.filter((s) => flags.only === undefined || s.name === flags.only);

// --- children: every one we start is tracked and killed by PID ---

const children = new Set<ChildProcess>();

function killAll(): void {
  for (const child of children) signal(child, 'SIGKILL');
}

process.once('SIGINT', () => {
  process.stderr.write('bench: interrupted; stopping children\n');
  killAll();
  process.exit(130);
});
process.once('SIGTERM', () => {
  killAll();
  process.exit(143);
});
process.on('exit', killAll);

// --- /proc sampling ---

const CLK_TCK = ((): number => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error(`bench: no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** utime + stime of every thread of the process, in clock ticks (proc(5), fields 14 and 15). */
function cpuTicks(pid: number): number {
  const [user, system] = cpuSplit(pid);
  return user + system;
}

/** [utime, stime] in clock ticks: user space (JS, V8, libuv) and kernel (syscalls, TCP). */
function cpuSplit(pid: number): [number, number] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: split after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [Number(fields[11]), Number(fields[12])];
}

/** Busy clock ticks of the whole machine, all cores (proc(5), /proc/stat "cpu" line). */
function machineBusyTicks(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] as string;
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  return (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
}

/**
 * The kernel's count of connections dropped because a listen queue was full (TcpExt
 * ListenOverflows in /proc/net/netstat): machine-wide, so read around one server's
 * connection phase it says whether that server's backlog overflowed.
 */
function listenOverflows(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = (lines[i] as string).split(' ');
    if (names[0] !== 'TcpExt:') continue;
    const at = names.indexOf('ListenOverflows');
    return at === -1 ? Number.NaN : Number((lines[i + 1] as string).split(' ')[at]);
  }
  return Number.NaN;
}

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

const ticksToUs = (ticks: number): number => (ticks * 1e6) / CLK_TCK;

function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1]);
}

// --- small helpers ---

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, HOST, () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolvePort(port));
    });
  });
}

function get(port: number, path: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, reject) => {
    const req = request({ host: HOST, port, path, method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 1 << 20) body += chunk;
      });
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** `status_check_rounds_total` from /metrics, or null when the server has none. */
async function checkRounds(port: number): Promise<number | null> {
  try {
    // A saturated server (the naive one at 10,000 streams) answers late.
    const { status, body } = await get(port, '/metrics', 30_000);
    if (status !== 200) return null;
    const m = /^status_check_rounds_total(?:\{[^}]*\})? (\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/m.exec(body);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Keeps the last bytes a child wrote, for the error message if it dies. */
function tail(stream: NodeJS.ReadableStream | null, limit = 8192): () => string {
  let text = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    text = (text + chunk).slice(-limit);
  });
  return () => text;
}

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolveExit) => {
    const timer = setTimeout(() => resolveExit(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolveExit(true);
    });
  });
}

function signal(child: ChildProcess, name: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(child.pid, name);
  } catch {
    // exited in between
  }
}

/** SIGTERM (the servers shut down cleanly, and --cpu-prof writes its profile), then SIGKILL. */
async function stop(child: ChildProcess): Promise<void> {
  signal(child, 'SIGTERM');
  if (!(await exited(child, STOP_TIMEOUT_MS))) {
    signal(child, 'SIGKILL');
    await exited(child, 2000);
  }
}

// --- one server ---

interface LoadgenMessage {
  type: string;
  t?: number;
  [key: string]: unknown;
}

interface LoadgenResult {
  connect: {
    withFirstEvent: number;
    allFirstEventsMs: number;
    failed: Record<string, number>;
    firstEventMs: { p50: number; p99: number; max: number };
    responseHeadMs: { p50: number; p99: number; max: number };
    tcpConnectMs: { p50: number; p99: number; max: number };
  };
  aliveAtWindowStart: number;
  aliveAtEnd: number;
  delivered: number;
  expected: number;
  lost: number;
  roundsSeen: number | null;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number; count: number };
  loadgen: { cpuMs: number; rssBytes: number };
  [key: string]: unknown;
}

export interface ServerResult {
  name: string;
  clients: number;
  withFirstEvent: number;
  allFirstEventsS: number;
  firstEventP99Ms: number;
  memPerStreamKiB: number;
  /** From the mean RSS over the window; memPerStreamKiB is from the peak. */
  memPerStreamMeanKiB: number;
  memPerStreamAtReadyKiB: number;
  cpuUsPerEvent: number;
  cpuPercentInWindow: number;
  /** Of the server's CPU in the window, the share spent in the kernel (stime). */
  kernelSharePercent: number;
  /** The load generator's CPU in the window, % of one core. */
  loadgenCpuPercentInWindow: number;
  /** Everything else on the machine in the window, % of one core: the noise. */
  otherCpuPercentInWindow: number;
  connectCpuUsPerStream: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  delivered: number;
  expected: number;
  lost: number;
  /** status-stream: from status_check_rounds_total; naive: one check per delivered event. */
  checkRoundsInWindow: number | null;
  /** Connections the kernel dropped from a full listen queue while the streams opened. */
  listenOverflows: number;
  releaseMs: number;
  rssBeforeMiB: number;
  rssPeakMiB: number;
  rssAfterMiB: number;
  /** Seconds from the clients leaving until RSS was near the start; NaN if not within --after. */
  nearStartAfterS: number;
  fdsBefore: number;
  fdsAfter: number;
  cpuProfile: string | null;
  loadgen: LoadgenResult;
}

const MiB = 1024 * 1024;
const r1 = (x: number): number => Math.round(x * 10) / 10;
const r2 = (x: number): number => Math.round(x * 100) / 100;

async function benchServer(spec: ServerSpec, profDir: string | null): Promise<ServerResult> {
  const port = await freePort();
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !CONFIG_VARS.includes(k)) env[k] = v;
  Object.assign(env, spec.env, { HOST, PORT: String(port) });
  const nodeArgs = [...spec.nodeArgs];
  // One directory per run: tsx's loader runs on a thread of its own, which writes a
  // profile too; the main thread's is the one with thread id 0 in its name.
  const runProfDir = profDir === null ? null : join(profDir, `${spec.name}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  if (runProfDir !== null) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${runProfDir}`);
  const args = [...nodeArgs, ...LOADER_ARGS, spec.script];
  process.stderr.write(`bench: ${spec.name}: starting node ${SERVER_NODE_VERSION} ${args.join(' ')} on ${HOST}:${port}\n`);
  const spawnedAt = now();
  const server = spawn(SERVER_NODE, args, {
    cwd: spec.cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(server);
  const serverOut = tail(server.stdout);
  const serverErr = tail(server.stderr);
  const pid = server.pid as number;
  process.stderr.write(`bench: ${spec.name}: pid ${pid}\n`);
  const died = (): Error =>
    new Error(`bench: ${spec.name} exited (code ${server.exitCode}, signal ${server.signalCode})\n${serverErr()}\n${serverOut()}`);

  try {
    // Wait for /healthz.
    const startDeadline = now() + START_TIMEOUT_MS;
    for (;;) {
      if (server.exitCode !== null || server.signalCode !== null) throw died();
      try {
        if ((await get(port, '/healthz', 1000)).status === 200) break;
      } catch {
        // not listening yet
      }
      if (now() > startDeadline) throw new Error(`bench: ${spec.name} did not answer /healthz within ${START_TIMEOUT_MS} ms\n${serverErr()}`);
      await sleep(100);
    }
    await sleep(IDLE_BEFORE_MS);
    const rssBefore = rssBytes(pid);
    const fdsBefore = openFds(pid);
    const cpuBefore = cpuTicks(pid);
    const overflowsBefore = listenOverflows();
    let overflowsReady = Number.NaN;

    const loadgen = spawn(
      process.execPath,
      [
        '--import', 'tsx', join(BENCH_DIR, 'loadgen.ts'),
        '--port', String(port),
        '--clients', String(CLIENTS),
        '--interval', String(INTERVAL_MS),
        '--seconds', String(SECONDS),
        '--concurrency', String(CONCURRENCY),
        '--rounds', spec.rounds,
        ...(flags['browser-headers'] ? ['--browser-headers'] : []),
      ],
      { cwd: REPO_DIR, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.add(loadgen);
    const loadgenErr = tail(loadgen.stderr);

    let rssReady = 0;
    let cpuReady = 0;
    // CPU ticks of the server (all, and in the kernel), the load generator and the whole
    // machine, and the time, read at the start and at the end of the steady window.
    const readCounters = () => {
      const [user, system] = cpuSplit(pid);
      return { cpu: user + system, system, loadgen: cpuTicks(loadgenPid), machine: machineBusyTicks(), t: now() };
    };
    let w0 = { cpu: 0, system: 0, loadgen: 0, machine: 0, t: 0 };
    let w1 = w0;
    const loadgenPid = loadgen.pid as number;
    let rssPeak = 0;
    let rssSum = 0;
    let rssSamples = 0;
    let rssSampler: NodeJS.Timeout | null = null;
    let roundsP0: Promise<number | null> = Promise.resolve(null);
    let roundsP1: Promise<number | null> = Promise.resolve(null);
    let leavingAt = 0;
    let releasedAt = 0;
    let releaseP: Promise<void> = Promise.resolve();
    let result: LoadgenResult | null = null;
    let windowStartEpoch = 0;
    let windowEndEpoch = 0;

    const lines = createInterface({ input: loadgen.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      let msg: LoadgenMessage;
      try {
        msg = JSON.parse(line) as LoadgenMessage;
      } catch {
        process.stderr.write(`bench: loadgen: ${line}\n`);
        return;
      }
      switch (msg.type) {
        case 'ready': {
          cpuReady = cpuTicks(pid);
          rssReady = rssBytes(pid);
          overflowsReady = listenOverflows();
          const c = msg as unknown as LoadgenResult['connect'];
          process.stderr.write(
            `bench: ${spec.name}: ${c.withFirstEvent}/${CLIENTS} streams have their first event after ${(c.allFirstEventsMs / 1000).toFixed(2)} s\n`,
          );
          break;
        }
        case 'window-start':
          w0 = readCounters();
          windowStartEpoch = msg.windowStart as number;
          rssPeak = rssBytes(pid);
          rssSum = rssPeak;
          rssSamples = 1;
          rssSampler = setInterval(() => {
            try {
              const rss = rssBytes(pid);
              rssPeak = Math.max(rssPeak, rss);
              rssSum += rss;
              rssSamples++;
            } catch {
              // the process is gone; the next step reports it
            }
          }, RSS_POLL_MS);
          roundsP0 = checkRounds(port);
          process.stderr.write(`bench: ${spec.name}: steady window of ${SECONDS} s\n`);
          break;
        case 'window-end':
          w1 = readCounters();
          windowEndEpoch = msg.windowEnd as number;
          if (rssSampler) clearInterval(rssSampler);
          rssPeak = Math.max(rssPeak, rssBytes(pid));
          roundsP1 = checkRounds(port);
          break;
        case 'leaving':
          leavingAt = now();
          releaseP = (async () => {
            const deadline = leavingAt + RELEASE_TIMEOUT_MS;
            while (now() < deadline) {
              if (openFds(pid) <= fdsBefore) {
                releasedAt = now();
                return;
              }
              await sleep(RELEASE_POLL_MS);
            }
          })();
          break;
        case 'result':
          result = msg as unknown as LoadgenResult;
          break;
        case 'error':
          process.stderr.write(`bench: loadgen error: ${String(msg.error)}\n`);
          break;
      }
    });

    const loadgenDeadlineMs = 30_000 + 2000 + 2 * INTERVAL_MS + SECONDS * 1000 + INTERVAL_MS + 5000 + 30_000;
    if (!(await exited(loadgen, loadgenDeadlineMs))) {
      signal(loadgen, 'SIGKILL');
      throw new Error(`bench: loadgen did not finish within ${loadgenDeadlineMs} ms\n${loadgenErr()}`);
    }
    if (rssSampler) clearInterval(rssSampler);
    if (server.exitCode !== null || server.signalCode !== null) throw died();
    if (result === null) throw new Error(`bench: loadgen gave no result (exit ${loadgen.exitCode})\n${loadgenErr()}`);
    const res: LoadgenResult = result;
    await releaseP;
    // V8 gives memory back only after a GC, and an idle process allocates nothing to
    // trigger one: watch RSS until it is near the start again, or --after runs out.
    const afterStart = now();
    let rssAfter = rssBytes(pid);
    let nearStartAfterMs = Number.NaN;
    while (now() - afterStart < AFTER_MAX_MS) {
      rssAfter = rssBytes(pid);
      if (rssAfter <= rssBefore * NEAR_START_FACTOR) {
        nearStartAfterMs = now() - leavingAt;
        break;
      }
      await sleep(250);
    }
    const fdsAfter = openFds(pid);
    const [rounds0, rounds1] = await Promise.all([roundsP0, roundsP1]);
    await stop(server);

    let cpuProfile: string | null = null;
    if (runProfDir !== null) {
      // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile (Node docs, --cpu-prof-name).
      const main = readdirSync(runProfDir).find((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f));
      if (main !== undefined) {
        cpuProfile = join(runProfDir, main);
        const profile = JSON.parse(readFileSync(cpuProfile, 'utf8')) as CpuProfile;
        // The profile clock starts with the process; the window is placed by wall time
        // from the spawn, good to a few tens of ms, and trimmed by 0.5 s at each edge.
        const fromS = (windowStartEpoch - spawnedAt) / 1000 + 0.5;
        const toS = (windowEndEpoch - spawnedAt) / 1000 - 0.5;
        process.stderr.write(
          `bench: ${spec.name}: CPU profile ${relative(process.cwd(), cpuProfile)}; steady window only:\n` +
            formatSummary(summarize(profile, { top: 20, fromS, toS })),
        );
      }
    }

    const alive = res.aliveAtWindowStart;
    const windowUs = (w1.t - w0.t) * 1000;
    return {
      name: spec.name,
      clients: CLIENTS,
      withFirstEvent: res.connect.withFirstEvent,
      allFirstEventsS: r2(res.connect.allFirstEventsMs / 1000),
      firstEventP99Ms: res.connect.firstEventMs.p99,
      memPerStreamKiB: r2((rssPeak - rssBefore) / Math.max(1, alive) / 1024),
      memPerStreamMeanKiB: r2((rssSum / Math.max(1, rssSamples) - rssBefore) / Math.max(1, alive) / 1024),
      memPerStreamAtReadyKiB: r2((rssReady - rssBefore) / Math.max(1, res.connect.withFirstEvent) / 1024),
      cpuUsPerEvent: r2(ticksToUs(w1.cpu - w0.cpu) / Math.max(1, res.delivered)),
      cpuPercentInWindow: r1((100 * ticksToUs(w1.cpu - w0.cpu)) / windowUs),
      kernelSharePercent: r1((100 * (w1.system - w0.system)) / Math.max(1, w1.cpu - w0.cpu)),
      loadgenCpuPercentInWindow: r1((100 * ticksToUs(w1.loadgen - w0.loadgen)) / windowUs),
      otherCpuPercentInWindow: r1(
        (100 * ticksToUs(Math.max(0, w1.machine - w0.machine - (w1.cpu - w0.cpu) - (w1.loadgen - w0.loadgen)))) / windowUs,
      ),
      connectCpuUsPerStream: r1(ticksToUs(cpuReady - cpuBefore) / Math.max(1, res.connect.withFirstEvent)),
      latencyP50Ms: res.latencyMs.p50,
      latencyP99Ms: res.latencyMs.p99,
      latencyMaxMs: res.latencyMs.max,
      delivered: res.delivered,
      expected: res.expected,
      lost: res.lost,
      // The naive server runs one check per event it sends, and at 10,000 streams its
      // timers starve its I/O so badly that /metrics answers only after the window: its
      // checks are counted from the events instead.
      checkRoundsInWindow: spec.rounds === 'per-client' ? res.delivered : rounds0 !== null && rounds1 !== null ? rounds1 - rounds0 : null,
      listenOverflows: overflowsReady - overflowsBefore,
      releaseMs: releasedAt > 0 ? Math.round(releasedAt - leavingAt) : Number.NaN,
      rssBeforeMiB: r1(rssBefore / MiB),
      rssPeakMiB: r1(rssPeak / MiB),
      rssAfterMiB: r1(rssAfter / MiB),
      nearStartAfterS: r1(nearStartAfterMs / 1000),
      fdsBefore,
      fdsAfter,
      cpuProfile,
      loadgen: res,
    };
  } finally {
    await stop(server).catch(() => {});
  }
}

// --- report ---

interface Row {
  label: string;
  value: (r: ServerResult) => number | null;
  format: (x: number, r: ServerResult) => string;
  target: string;
  meets?: (x: number, r: ServerResult) => boolean;
  /** false: a ratio of this row means nothing (the machine's noise, the load generator). */
  ratio?: boolean;
}

const fmt = (digits: number) => (x: number): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
interface Settings {
  clients: number;
  intervalMs: number;
  seconds: number;
  afterS: number;
  repeat?: number;
}

/**
 * One server's runs as one result: every top-level figure is the median over the runs
 * (NaN, "not within the time watched", counts as the largest), the rest is the first run's.
 */
function medianResult(runs: ServerResult[]): ServerResult {
  const [first] = runs;
  if (first === undefined) throw new Error('bench: no runs');
  if (runs.length === 1) return first;
  const median: Record<string, unknown> = { ...first };
  for (const [key, value] of Object.entries(first)) {
    if (typeof value !== 'number') continue;
    const values = runs.map((r) => r[key as keyof ServerResult] as number).map((x) => (Number.isNaN(x) ? Number.POSITIVE_INFINITY : x));
    values.sort((a, b) => a - b);
    const mid = values.length >> 1;
    const m = values.length % 2 === 1 ? (values[mid] as number) : ((values[mid - 1] as number) + (values[mid] as number)) / 2;
    median[key] = Number.isFinite(m) ? Math.round(m * 1000) / 1000 : Number.NaN;
  }
  return median as unknown as ServerResult;
}

/** With --repeat: the figures the noise moves most, run by run. */
function perRun(runs: ServerResult[] | undefined): string {
  if (runs === undefined || runs.length <= new Set(runs.map((r) => r.name)).size) return '';
  const names = [...new Set(runs.map((r) => r.name))];
  const line = (label: string, value: (r: ServerResult) => number, digits: number): string =>
    `${label} by run: ${names.map((n) => `${n} ${runs.filter((r) => r.name === n).map((r) => value(r).toFixed(digits)).join(', ')}`).join('; ')}\n`;
  return (
    line('latency p99 (ms)', (r) => r.latencyP99Ms, 1) +
    line('server CPU per delivered event (us)', (r) => r.cpuUsPerEvent, 1) +
    line('server memory per stream, peak (KiB)', (r) => r.memPerStreamKiB, 1) +
    line('other processes CPU in window (% of a core)', (r) => r.otherCpuPercentInWindow, 1)
  );
}

/** The table's rows; the targets are issue 6's, at the run's own settings. */
function rowsFor(settings: Settings): Row[] {
  const windowRounds = Math.floor((settings.seconds * 1000) / settings.intervalMs);
  const CLIENTS = settings.clients;
  return [
  { label: 'streams with a first event', value: (r) => r.withFirstEvent, format: fmt(0), target: `${CLIENTS}`, meets: (x) => x === CLIENTS },
  {
    label: 'all first events within (s)',
    value: (r) => r.allFirstEventsS,
    // A server that never gave some streams their first event gets no time: "> deadline".
    format: (x, r) => (r.withFirstEvent < r.clients ? `> ${fmt(0)(x)}` : fmt(2)(x)),
    target: '<= 3',
    meets: (x, r) => x <= 3 && r.withFirstEvent === r.clients,
  },
  { label: 'server memory per stream, peak (KiB)', value: (r) => r.memPerStreamKiB, format: fmt(1), target: '<= 10', meets: (x) => x <= 10 },
  { label: 'server memory per stream, mean (KiB)', value: (r) => r.memPerStreamMeanKiB, format: fmt(1), target: '' },
  { label: 'server CPU per delivered event (us)', value: (r) => r.cpuUsPerEvent, format: fmt(1), target: '<= 20', meets: (x) => x <= 20 },
  { label: 'server CPU in window (% of a core)', value: (r) => r.cpuPercentInWindow, format: fmt(1), target: '' },
  { label: '  of which in the kernel (%)', value: (r) => r.kernelSharePercent, format: fmt(0), target: '' },
  { label: 'load generator CPU in window (% of a core)', value: (r) => r.loadgenCpuPercentInWindow, format: fmt(1), target: '', ratio: false },
  { label: 'other processes CPU in window (% of a core)', value: (r) => r.otherCpuPercentInWindow, format: fmt(1), target: '', ratio: false },
  { label: 'latency p50 (ms)', value: (r) => r.latencyP50Ms, format: fmt(1), target: '' },
  { label: 'latency p99 (ms)', value: (r) => r.latencyP99Ms, format: fmt(1), target: '<= 150', meets: (x) => x <= 150 },
  { label: 'latency max (ms)', value: (r) => r.latencyMaxMs, format: fmt(1), target: '' },
  { label: 'delivered / expected (%)', value: (r) => (100 * r.delivered) / Math.max(1, r.expected), format: fmt(2), target: '100', meets: (_x, r) => r.lost === 0 && r.delivered >= r.expected },
  { label: 'events lost', value: (r) => r.lost, format: fmt(0), target: '0', meets: (x) => x === 0 },
  { label: 'checks run in window', value: (r) => r.checkRoundsInWindow, format: fmt(0), target: `~${windowRounds}`, meets: (x) => x <= windowRounds + 1 },
  { label: 'socket release after clients leave (ms)', value: (r) => r.releaseMs, format: fmt(0), target: '' },
  { label: 'listen queue overflows while opening', value: (r) => r.listenOverflows, format: fmt(0), target: '0', meets: (x) => x === 0 },
  { label: 'connection set-up CPU per stream (us)', value: (r) => r.connectCpuUsPerStream, format: fmt(0), target: '' },
  { label: 'RSS before (MiB)', value: (r) => r.rssBeforeMiB, format: fmt(1), target: '' },
  { label: 'RSS peak with streams (MiB)', value: (r) => r.rssPeakMiB, format: fmt(1), target: '' },
  {
    label: 'RSS after clients leave (MiB)',
    value: (r) => r.rssAfterMiB,
    format: fmt(1),
    target: `<= ${NEAR_START_FACTOR} x before`,
    meets: (x, r) => x <= r.rssBeforeMiB * NEAR_START_FACTOR,
  },
  {
    label: 'RSS near before again after (s)',
    // NaN (not within --after) is null in the JSON.
    value: (r) => r.nearStartAfterS ?? Number.NaN,
    format: (x) => (Number.isFinite(x) ? x.toFixed(1) : `> ${settings.afterS}`),
    target: '',
  },
  ];
}

/** The servers status-stream is compared with, each in a ratio column of its own. */
const BASELINES = ['naive', 'floor'] as const;

function ratio(row: Row, ours: ServerResult, other: ServerResult): number | null {
  if (row.ratio === false) return null;
  const a = row.value(ours);
  const b = row.value(other);
  return a !== null && b !== null && b !== 0 && Number.isFinite(a / b) ? a / b : null;
}

function ratioText(row: Row, ours: ServerResult, other: ServerResult): string {
  const x = ratio(row, ours, other);
  if (x === null) return '';
  return `${x >= 0.1 ? x.toFixed(2) : x >= 0.01 ? x.toFixed(3) : x.toPrecision(2)}x`;
}

/** status-stream's result and the baselines measured with it in this run. */
function comparisons(results: ServerResult[]): { ours: ServerResult | undefined; others: ServerResult[] } {
  const ours = results.find((r) => r.name === 'status-stream');
  const others = ours ? BASELINES.flatMap((name) => results.filter((r) => r.name === name)) : [];
  return { ours, others };
}

function table(results: ServerResult[], rows: Row[]): string {
  const { ours, others } = comparisons(results);
  const header = ['metric', ...results.map((r) => r.name), ...others.map((o) => `/ ${o.name}`), 'target'];
  if (ours) header.push('met');
  const body: string[][] = [];
  for (const row of rows) {
    const cells = [row.label];
    for (const r of results) {
      const v = row.value(r);
      cells.push(v === null ? 'n/a' : row.format(v, r));
    }
    if (ours) for (const other of others) cells.push(ratioText(row, ours, other));
    cells.push(row.target);
    if (ours) {
      const v = row.value(ours);
      cells.push(row.meets === undefined || v === null ? '' : row.meets(v, ours) ? 'yes' : 'NO');
    }
    body.push(cells);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((c) => (c[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), sep, ...body.map(line)].join('\n');
}

function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memGiB: Math.round(os.totalmem() / 1024 ** 3),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    serverNode: SERVER_NODE_VERSION,
    clkTck: CLK_TCK,
    somaxconn: ((): string => {
      try {
        return readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim();
      } catch {
        return 'unknown';
      }
    })(),
  };
}

async function main(): Promise<void> {
  if (flags.table !== undefined) {
    // Prints the table of an earlier run again, e.g. for the README.
    const report = JSON.parse(readFileSync(flags.table, 'utf8')) as Report;
    report.settings.afterS ??= 20;
    process.stdout.write(render(report));
    return;
  }
  const fdLimit = openFilesLimit();
  if (fdLimit < CLIENTS + 1024) {
    process.stderr.write(`bench: the open-files limit is ${fdLimit}; ${CLIENTS} streams need at least ${CLIENTS + 1024} (ulimit -n)\n`);
    process.exit(2);
  }
  const outFile = resolve(flags.out);
  mkdirSync(dirname(outFile), { recursive: true });
  const profDir = flags['cpu-prof'] ? join(dirname(outFile), 'prof') : null;
  if (profDir !== null) mkdirSync(profDir, { recursive: true });
  const argv = process.argv.slice(2);
  const command = argv.length === 0 ? 'npm run bench' : `npm run bench -- ${argv.join(' ')}`;
  const startedAt = new Date();
  // Passes take turns, so that a noisy minute of the machine falls on every server alike.
  const runs: ServerResult[] = [];
  for (let pass = 0; pass < REPEAT; pass++) {
    for (const spec of SERVERS) runs.push(await benchServer(spec, profDir));
  }
  const results = SERVERS.map((spec) => medianResult(runs.filter((r) => r.name === spec.name)));
  const settings: Settings = { clients: CLIENTS, intervalMs: INTERVAL_MS, seconds: SECONDS, afterS: AFTER_MAX_MS / 1000, repeat: REPEAT };
  const rows = rowsFor(settings);
  // ratios[baseline][row label] = status-stream / baseline.
  const ratios: Record<string, Record<string, number | null>> = {};
  const { ours, others } = comparisons(results);
  if (ours) {
    for (const other of others) {
      const byRow: Record<string, number | null> = {};
      for (const row of rows) {
        const x = ratio(row, ours, other);
        byRow[row.label] = x === null ? null : Math.round(x * 10000) / 10000;
      }
      ratios[other.name] = byRow;
    }
  }
  const report = {
    startedAt: startedAt.toISOString(),
    durationS: Math.round((Date.now() - startedAt.getTime()) / 1000),
    command,
    settings: {
      ...settings,
      concurrency: CONCURRENCY,
      heartbeatMs: HEARTBEAT_MS ?? 'server default',
      browserHeaders: flags['browser-headers'],
      nodeArgs: ALL_SERVERS[0]?.nodeArgs ?? [], serverEnv: SERVER_ENV, serverDir: SERVER_DIR, serverScript: flags['server-script'],
    },
    machine: machine(),
    results,
    ratios,
    runs,
  };
  writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\n${render(report)}\nJSON: ${relative(process.cwd(), outFile)}\n`);
}

interface Report {
  settings: Settings;
  machine: Record<string, unknown>;
  /** Per server: the run's figures, or with --repeat their medians. */
  results: ServerResult[];
  /** Every run, in the order they ran (absent in reports from before --repeat). */
  runs?: ServerResult[];
}

function render(report: Report): string {
  const { settings: s, machine: m } = report;
  return (
    `${s.clients} streams, one event per ${s.intervalMs} ms, ${s.seconds} s steady window; ${String(m.cores)} x ${String(m.cpu)}, ` +
    `${String(m.memGiB)} GiB, ${String(m.os)}, servers on Node ${String(m.serverNode)}; load generator on the same machine` +
    `${(s.repeat ?? 1) > 1 ? `; medians of ${s.repeat} runs each` : ''}\n\n` +
    `${table(report.results, rowsFor(s))}\n\n/ naive, / floor = status-stream's figure divided by that server's\n${perRun(report.runs)}`
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  killAll();
  process.exit(1);
});
