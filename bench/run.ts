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
//   npm run bench -- [--scenario bare|full] [--image] [--clients 10000] [--interval 1000] [--seconds 20]
//       [--checks 50] [--check-interval 5000]
//       [--only status-stream|naive|floor|full|floor-full]
//       [--out bench/results/latest.json] [--concurrency 2000] [--settle 2000] [--heartbeat MS] [--after 30]
//       [--cpu-prof] [--node PATH] [--browser-headers] [--repeat 1]
//       [--node-arg=--max-semi-space-size=2] [--server-env NAME=VALUE] [--server-dir DIR] [--server-script FILE]
//
// --scenario bare (default): status-stream as `npm start` runs it with nothing configured,
//     against naive and floor. --scenario full: status-stream twice, bare and with every
//     feature on (`full`: 50 checks with conditions against local targets, history in a
//     STATE_DIR, two alert receivers, one app event a second through POST /publish, half the
//     streams filtered with ?events=message,change; bench/full-helper.ts), and `floor-full`,
//     the floor doing the same job by the least means (the same checks, app events and
//     alerts, the same events written); the ratios full / bare and full / floor in one run.
// --image: status-stream (and full) run as the image runs them: scripts/docker-env.sh's
//     engine and Node 24 base, `docker build`, `docker run --network host`; the load generator
//     stays outside and the container's main process is read from /proc by its host PID.
//     The container, the image and a private engine are removed afterwards.
// --clients, --interval, --seconds: streams, event interval (STATUS_INTERVAL_MS), length of
//     the steady window over which CPU, latency and delivery are measured.
// --checks, --check-interval: the full scenario's checks (at least 3) and how often each runs,
//     ms (the flapping one: every second). The ratio targets are set for the defaults.
// --concurrency: connections the load generator has in flight while opening (above Node's
//     default listen backlog of 511 on purpose: that is what thousands of reconnecting
//     browsers do).
// --settle: how long the load generator waits, once every stream has its first event,
//     before the steady window opens (ms).
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
// Method, figures and how to read them: bench/README.md.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SETTINGS } from '../config.ts';
import { intFlag } from './flags.ts';
import { CHECK_INTERVAL_MS, FLAP_HALF_PERIOD_MS, FULL_CHECKS, MIN_FULL_CHECKS } from './full-helper.ts';
import { type Image, imageDownSync, imageUp } from './image.ts';
import { machine, medianResult, openFilesLimit, type ServerResult } from './measure.ts';
import { killAll, killChildrenOnExit, onKillAll } from './processes.ts';
import { type Report, ratiosFor, ratioVerdicts, render, rowsFor, type Settings } from './report.ts';
import { benchServer, type RunOptions, type ServerSpec } from './server-run.ts';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_DIR = resolve(BENCH_DIR, '..');

// Configuration variables of status-stream (every one config.ts reads, and NODE_OPTIONS):
// removed from the inherited environment so that a developer's shell cannot change what
// the bench measures.
const CONFIG_VARS = [...SETTINGS.map((setting) => setting.name), 'NODE_OPTIONS'];

/** floor-full's snapshot size when no full run measured the service's in this run (50 checks). */
const FULL_SNAPSHOT_CHARS = 11_700;
/** The full service's GET /status, saved by its run for floor-full's; removed at the end. */
const FULL_SNAPSHOT_FILE = join(tmpdir(), `status-stream-bench-${process.pid}-snapshot.json`);

const FLAGS = {
  scenario: { type: 'string', default: 'bare' },
  image: { type: 'boolean', default: false },
  clients: { type: 'string', default: '10000' },
  interval: { type: 'string', default: '1000' },
  seconds: { type: 'string', default: '20' },
  checks: { type: 'string' },
  'check-interval': { type: 'string' },
  only: { type: 'string' },
  out: { type: 'string', default: join(BENCH_DIR, 'results', 'latest.json') },
  concurrency: { type: 'string', default: '2000' },
  settle: { type: 'string', default: '2000' },
  heartbeat: { type: 'string' },
  'cpu-prof': { type: 'boolean', default: false },
  'node-arg': { type: 'string', multiple: true, default: [] as string[] },
  'server-dir': { type: 'string', default: REPO_DIR },
  'server-script': { type: 'string', default: 'server.ts' },
  'server-env': { type: 'string', multiple: true, default: [] as string[] },
  node: { type: 'string', default: process.execPath },
  'browser-headers': { type: 'boolean', default: false },
  repeat: { type: 'string', default: '1' },
  after: { type: 'string', default: '30' },
  table: { type: 'string' },
  help: { type: 'boolean', default: false },
} as const;

/** The command line, checked: a bad value is one line on stderr and exit code 2. */
export interface CliOptions extends RunOptions {
  scenario: 'bare' | 'full';
  image: boolean;
  repeat: number;
  heartbeatMs: number | undefined;
  only: string | undefined;
  out: string;
  cpuProf: boolean;
  table: string | undefined;
  help: boolean;
  serverDir: string;
  serverScript: string;
  serverEnv: Record<string, string>;
  /** Extra node flags for status-stream only. */
  nodeArgs: string[];
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

export function parseOptions(argv: string[]): CliOptions {
  const { values: flags } = parseArgs({ args: argv, options: FLAGS, strict: true });
  const serverNode = resolve(flags.node);
  const serverNodeVersion = nodeVersion(serverNode);
  if (flags.scenario !== 'bare' && flags.scenario !== 'full') {
    fail(`--scenario must be bare or full, got ${JSON.stringify(flags.scenario)}`);
  }
  if (flags.scenario !== 'full' && (flags.checks !== undefined || flags['check-interval'] !== undefined)) {
    fail('--checks and --check-interval shape the full scenario: add --scenario full');
  }
  return {
    scenario: flags.scenario,
    image: flags.image,
    clients: intFlag('bench', 'clients', flags.clients, 1, 50_000),
    intervalMs: intFlag('bench', 'interval', flags.interval, 100, 60_000),
    seconds: intFlag('bench', 'seconds', flags.seconds, 1, 600),
    repeat: intFlag('bench', 'repeat', flags.repeat, 1, 20),
    concurrency: intFlag('bench', 'concurrency', flags.concurrency, 1, 50_000),
    settleMs: intFlag('bench', 'settle', flags.settle, 0, 60_000),
    heartbeatMs:
      flags.heartbeat === undefined ? undefined : intFlag('bench', 'heartbeat', flags.heartbeat, 0, 3_600_000),
    afterMaxMs: intFlag('bench', 'after', flags.after, 0, 600) * 1000,
    browserHeaders: flags['browser-headers'],
    checks: {
      count: flags.checks === undefined ? FULL_CHECKS : intFlag('bench', 'checks', flags.checks, MIN_FULL_CHECKS, 1000),
      intervalMs:
        flags['check-interval'] === undefined
          ? CHECK_INTERVAL_MS
          : intFlag('bench', 'check-interval', flags['check-interval'], 100, 60_000),
    },
    serverNode,
    serverNodeVersion,
    loaderArgs: stripsTypes(serverNodeVersion) ? [] : ['--import', 'tsx'],
    configVars: CONFIG_VARS,
    benchDir: BENCH_DIR,
    repoDir: REPO_DIR,
    only: flags.only,
    out: resolve(flags.out),
    cpuProf: flags['cpu-prof'],
    table: flags.table,
    help: flags.help,
    serverDir: resolve(flags['server-dir']),
    serverScript: flags['server-script'],
    serverEnv: envPairs(flags['server-env']),
    nodeArgs: [...flags['node-arg']],
  };
}

/** `node --version` of the binary that will run the servers; exit 2 if it is no Node. */
function nodeVersion(node: string): string {
  let version = '';
  try {
    version = execFileSync(node, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim();
  } catch (err) {
    fail(`--node ${node} cannot be run: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  }
  if (!/^v\d+\.\d+\.\d+/.test(version)) {
    fail(`--node ${node} is not a Node binary (--version says ${JSON.stringify(version)})`);
  }
  return version;
}

/** Node >= 22.18 (and 23.6) strips erasable types itself: `node server.ts`, as in the image. */
export function stripsTypes(version: string): boolean {
  const [major = 0, minor = 0] = version.slice(1).split('.').map(Number);
  return major >= 24 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18);
}

function envPairs(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) fail(`--server-env must be NAME=VALUE, got ${JSON.stringify(pair)}`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

/**
 * The node flags of `npm start` in `dir` (package.json), written as --flag or --flag=value,
 * so that the bench runs the service as it is shipped. tsx's --import is added anyway.
 */
export function startNodeArgs(dir: string): string[] {
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

/**
 * The servers of the scenario: bare: status-stream as `npm start` runs it, the naive baseline
 * and the floor; full: status-stream bare and with every feature on, and the floor writing
 * the full scenario's events. With `image`, status-stream runs as that image instead.
 */
export function serverSpecs(o: CliOptions, image: Image | null = null): ServerSpec[] {
  const ours: ServerSpec = {
    name: 'status-stream',
    cwd: o.serverDir,
    script: o.serverScript,
    rounds: 'shared',
    env: {
      STATUS_INTERVAL_MS: String(o.intervalMs),
      LOG_LEVEL: 'warn',
      MAX_CLIENTS: String(o.clients + 1000),
      ...(o.heartbeatMs === undefined ? {} : { HEARTBEAT_MS: String(o.heartbeatMs) }),
      ...o.serverEnv,
    },
    nodeArgs: [...startNodeArgs(o.serverDir), ...o.nodeArgs],
    image,
  };
  const floor = (name: string, env: Record<string, string>): ServerSpec => ({
    name,
    cwd: REPO_DIR,
    script: join('bench', 'floor-server.ts'),
    rounds: 'shared',
    env: { STATUS_INTERVAL_MS: String(o.intervalMs), ...env },
    nodeArgs: [],
  });
  if (o.scenario === 'full') {
    return [
      ours,
      { ...ours, name: 'full', world: true, filteredShare: 0.5, snapshotOut: FULL_SNAPSHOT_FILE },
      {
        ...floor('floor-full', {
          FLOOR_SNAPSHOT_CHARS: String(FULL_SNAPSHOT_CHARS),
          FLOOR_CHANGE_EVERY_MS: String(FLAP_HALF_PERIOD_MS),
        }),
        world: true,
        filteredShare: 0.5,
      },
    ];
  }
  return [
    ours,
    {
      name: 'naive',
      cwd: REPO_DIR,
      script: join('bench', 'naive-server.ts'),
      rounds: 'per-client',
      env: { STATUS_INTERVAL_MS: String(o.intervalMs) },
      nodeArgs: [],
    },
    floor('floor', {}),
  ];
}

/**
 * floor-full writes the full service's own snapshot of this run (FULL_SNAPSHOT_FILE); without
 * one (--only floor-full), its own padded to the size the full service's last run measured.
 */
function sizedLike(spec: ServerSpec, runs: readonly ServerResult[]): ServerSpec {
  if (spec.name !== 'floor-full') return spec;
  if (existsSync(FULL_SNAPSHOT_FILE)) return { ...spec, env: { ...spec.env, FLOOR_SNAPSHOT_FILE: FULL_SNAPSHOT_FILE } };
  const full = runs.filter((r) => r.name === 'full' && Number.isFinite(r.snapshotBytes)).at(-1);
  if (full === undefined) return spec;
  return { ...spec, env: { ...spec.env, FLOOR_SNAPSHOT_CHARS: String(Math.round(full.snapshotBytes)) } };
}

function printHelp(): void {
  const source = readFileSync(fileURLToPath(import.meta.url), 'utf8');
  process.stdout.write(`${source.slice(0, source.indexOf('\nimport '))}\n`);
}

/** Prints the table of an earlier run's JSON again, e.g. for bench/README.md. */
function printSaved(file: string): void {
  const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
  report.settings.afterS ??= 20;
  process.stdout.write(render(report));
}

/** The JSON of a run: settings, machine, medians per server, ratios, and every run. */
interface Measured {
  argv: string[];
  startedAt: Date;
  servers: ServerSpec[];
  /** Every run, in the order they ran. */
  runs: ServerResult[];
  /** status-stream's node flags, as the JSON has always kept them (with --only too). */
  nodeArgs: string[];
}

function reportOf(o: CliOptions, { argv, startedAt, servers, runs, nodeArgs }: Measured) {
  const results = servers.map((spec) => medianResult(runs.filter((r) => r.name === spec.name)));
  const image = servers.find((s) => s.image)?.image ?? null;
  const settings: Settings = {
    clients: o.clients,
    intervalMs: o.intervalMs,
    seconds: o.seconds,
    afterS: o.afterMaxMs / 1000,
    repeat: o.repeat,
    statusStreamCommand: !servers.some((s) => s.name === 'status-stream' || s.name === 'full')
      ? undefined
      : image === null
        ? ['node', ...o.loaderArgs, ...nodeArgs, o.serverScript].join(' ')
        : `docker run --network host -e HOST=127.0.0.1 -e PORT=… ${image.tag}: node server.ts, ` +
          `NODE_OPTIONS=${image.nodeOptions}`,
    scenario: o.scenario,
    ...(o.scenario === 'full' ? { checks: o.checks.count, checkIntervalMs: o.checks.intervalMs } : {}),
    ...(image === null
      ? {}
      : {
          image: {
            tag: image.tag,
            base: image.base,
            nodeVersion: image.nodeVersion,
            libc: image.libc,
            nodeOptions: image.nodeOptions,
          },
        }),
  };
  return {
    startedAt: startedAt.toISOString(),
    durationS: Math.round((Date.now() - startedAt.getTime()) / 1000),
    command: argv.length === 0 ? 'npm run bench' : `npm run bench -- ${argv.join(' ')}`,
    settings: {
      ...settings,
      concurrency: o.concurrency,
      settleMs: o.settleMs,
      heartbeatMs: o.heartbeatMs ?? 'server default',
      browserHeaders: o.browserHeaders,
      nodeArgs,
      serverEnv: o.serverEnv,
      serverDir: o.serverDir,
      serverScript: o.serverScript,
    },
    machine: machine({ nodeVersion: o.serverNodeVersion, nodePath: o.serverNode }),
    results,
    ratios: ratiosFor(results, rowsFor(settings)),
    ratioTargets: ratioVerdicts(results, rowsFor(settings), runs),
    runs,
  };
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const o = parseOptions(argv);
  if (o.help) return printHelp();
  if (o.table !== undefined) return printSaved(o.table);
  const names = serverSpecs(o).map((s) => s.name);
  if (o.only !== undefined && !names.includes(o.only)) {
    fail(`--only must be one of ${names.join(', ')} with --scenario ${o.scenario}, got ${JSON.stringify(o.only)}`);
  }
  if (o.image && o.cpuProf) fail('--cpu-prof cannot profile a container: leave out --image');
  const fdLimit = openFilesLimit();
  if (fdLimit < o.clients + 1024) {
    fail(`the open-files limit is ${fdLimit}; ${o.clients} streams need at least ${o.clients + 1024} (ulimit -n)`);
  }
  killChildrenOnExit('bench');
  const wanted = (name: string): boolean => o.only === undefined || name === o.only;
  const needsImage = o.image && (wanted('status-stream') || wanted('full'));
  const removeSnapshot = (): void => rmSync(FULL_SNAPSHOT_FILE, { force: true });
  onKillAll(removeSnapshot);
  const image = needsImage ? imageUp(REPO_DIR) : null;
  try {
    await measureAll(o, argv, serverSpecs(o, image), wanted);
  } finally {
    removeSnapshot();
    if (image !== null) imageDownSync(image);
  }
}

async function measureAll(
  o: CliOptions,
  argv: string[],
  all: ServerSpec[],
  wanted: (name: string) => boolean,
): Promise<void> {
  const servers = all.filter((s) => wanted(s.name));
  mkdirSync(dirname(o.out), { recursive: true });
  const profDir = o.cpuProf ? join(dirname(o.out), 'prof') : null;
  if (profDir !== null) mkdirSync(profDir, { recursive: true });
  const startedAt = new Date();
  // Passes take turns, so that a noisy minute of the machine falls on every server alike.
  const runs: ServerResult[] = [];
  for (let pass = 0; pass < o.repeat; pass++) {
    for (const spec of servers) runs.push(await benchServer(sizedLike(spec, runs), o, profDir));
  }
  const report = reportOf(o, { argv, startedAt, servers, runs, nodeArgs: all[0]?.nodeArgs ?? [] });
  writeFileSync(o.out, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\n${render(report)}\nJSON: ${relative(process.cwd(), o.out)}\n`);
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1]);
if (isMain) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    killAll();
    process.exit(1);
  });
}
