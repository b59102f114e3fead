// bench/server-run.ts: one server's measured run: start it (bench/processes.ts; in a
// container with --image, bench/image.ts), with the full scenario's world around it
// (bench/full-helper.ts) when asked, read it from /proc before, during and after the load
// generator's phases (bench/measure.ts), and turn the readings into its figures. Every
// process and container it starts is stopped before it returns.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { type CheckLoad, startWorld, type World } from './full-helper.ts';
import { type Image, startContainer } from './image.ts';
import {
  type Counters,
  checkRounds,
  cpuTicks,
  figures,
  type LoadgenResult,
  listenOverflows,
  now,
  openFds,
  openFilesLimit,
  type Readings,
  RssSampler,
  readCounters,
  rssBytes,
  type ServerResult,
  settledFds,
  type WorldReport,
  waitForRelease,
  watchRssReturn,
} from './measure.ts';
import {
  childEnv,
  exited,
  freePort,
  get,
  HOST,
  type Running,
  running,
  signal,
  sleep,
  spawnTracked,
  startServer,
  tail,
} from './processes.ts';
import { type CpuProfile, formatSummary, summarize } from './profile.ts';

/** How long a server may take to answer /healthz after it is started. */
const START_TIMEOUT_MS = 20_000;
/** Quiet time after start-up before the "before" sample, so start-up work is not counted. */
const IDLE_BEFORE_MS = 1500;

/** One of the servers a run measures. */
export interface ServerSpec {
  name: string;
  cwd: string;
  script: string;
  /** shared: one round per interval for every stream; per-client: a timer per stream. */
  rounds: 'shared' | 'per-client';
  env: Record<string, string>;
  nodeArgs: string[];
  /** The full scenario's world around it: checks' targets, alert receivers, an app publishing. */
  world?: boolean;
  /** The share of the streams that ask for `?events=message,change` (0: none). */
  filteredShare?: number;
  /** Run as this image, in a container, instead of as a child of `node`. */
  image?: Image | null;
  /** Where to save the server's GET /status after the window (the floor's copy of it). */
  snapshotOut?: string;
}

/** The full scenario's app: one event a second (bench/full-helper.ts). */
export const APP_EVERY_MS = 1000;
/** Where the image finds the full scenario's files (mounted from the world's directory). */
const CONTAINER_CONFIG_DIR = '/bench-world';
const CONTAINER_STATE_DIR = '/var/lib/status-stream';

/** What every server's run shares: the load, and the Node that runs the servers. */
export interface RunOptions {
  clients: number;
  intervalMs: number;
  seconds: number;
  concurrency: number;
  /** The load generator's wait between the last first event and the window, ms. */
  settleMs: number;
  afterMaxMs: number;
  browserHeaders: boolean;
  /** The full scenario's checks. */
  checks: CheckLoad;
  /** The Node binary that runs the servers, its version, and its flags to load TypeScript. */
  serverNode: string;
  serverNodeVersion: string;
  loaderArgs: string[];
  /** Removed from the inherited environment of every server. */
  configVars: readonly string[];
  benchDir: string;
  repoDir: string;
}

/** The steady window's edges, epoch ms. */
type Window = { start: number; end: number };

/** The load generator's messages, one JSON object a line (bench/loadgen.ts). */
interface LoadgenMessage {
  type: string;
  t?: number;
  [key: string]: unknown;
}

/** Starts `spec`, measures it under load, stops it; its figures. */
export async function benchServer(spec: ServerSpec, o: RunOptions, profDir: string | null): Promise<ServerResult> {
  const port = await freePort();
  const world = spec.world
    ? await startWorld({
        benchDir: o.benchDir,
        appEveryMs: APP_EVERY_MS,
        checks: o.checks,
        shared: Boolean(spec.image),
      })
    : null;
  try {
    const server = await launch(spec, o, port, world, profDir);
    try {
      world?.publishTo(port);
      await sleep(IDLE_BEFORE_MS);
      const { readings, result, window } = await underLoad(spec, o, server, port);
      const seen: WorldReport | null = world === null ? null : await world.report(window.start, window.end);
      if (spec.snapshotOut !== undefined) writeFileSync(spec.snapshotOut, (await get(port, '/status', 10_000)).body);
      await server.stop();
      const cpuProfile =
        server.profDir === null ? null : profileOf(spec.name, server.profDir, server.spawnedAt, window);
      return figures({ name: spec.name, rounds: spec.rounds, clients: o.clients, cpuProfile }, readings, result, seen);
    } finally {
      await server.stop().catch(() => {});
    }
  } finally {
    await world?.stop();
  }
}

/** Starts the server of `spec` on `port`, as a child of `node` or as a container of its image. */
async function launch(
  spec: ServerSpec,
  o: RunOptions,
  port: number,
  world: World | null,
  profDir: string | null,
): Promise<Running & { profDir: string | null }> {
  const worldEnv = (configDir: string, stateDir: string): Record<string, string> =>
    world === null
      ? {}
      : {
          CONFIG_FILE: `${configDir}/config.json`,
          STATE_DIR: stateDir,
          PUBLISH_TOKEN: world.token,
          TITLE: 'bench: full scenario',
        };
  if (spec.image) {
    if (profDir !== null) throw new Error('bench: --cpu-prof cannot profile a container');
    const image = spec.image;
    process.stderr.write(
      `bench: ${spec.name}: starting the image ${image.tag} (${image.nodeVersion}) on ${HOST}:${port}\n`,
    );
    const server = await startContainer(image, {
      name: spec.name,
      port,
      env: { ...spec.env, ...worldEnv(CONTAINER_CONFIG_DIR, CONTAINER_STATE_DIR) },
      mounts:
        world === null
          ? []
          : [
              { host: world.dir, container: CONTAINER_CONFIG_DIR },
              { host: world.stateDir, container: CONTAINER_STATE_DIR, rw: true },
            ],
      nofile: Math.min(openFilesLimit(), 1_048_576),
      startTimeoutMs: START_TIMEOUT_MS,
    });
    return { ...server, profDir: null };
  }
  const env = childEnv(o.configVars, {
    ...spec.env,
    ...(world === null ? {} : worldEnv(world.dir, world.stateDir)),
    HOST,
    PORT: String(port),
  });
  const nodeArgs = [...spec.nodeArgs];
  // One directory per run: tsx's loader runs on a thread of its own, which writes a
  // profile too; the main thread's is the one with thread id 0 in its name.
  const runProfDir =
    profDir === null ? null : join(profDir, `${spec.name}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  if (runProfDir !== null) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${runProfDir}`);
  // tsx's loader first, so that a --node-arg=--import of a .ts file (bench/heap-watch.ts) loads on Node 20 too.
  const args = [...o.loaderArgs, ...nodeArgs, spec.script];
  const commandLine = `node ${o.serverNodeVersion} ${args.join(' ')}`;
  process.stderr.write(`bench: ${spec.name}: starting ${commandLine} on ${HOST}:${port}\n`);
  const server = await startServer({
    name: spec.name,
    node: o.serverNode,
    args,
    cwd: spec.cwd,
    env,
    port,
    startTimeoutMs: START_TIMEOUT_MS,
  });
  return { ...running(server), profDir: runProfDir };
}

/** The load generator's command line for one server. */
function loadgenArgs(spec: ServerSpec, o: RunOptions, port: number): string[] {
  return [
    ...['--import', 'tsx', join(o.benchDir, 'loadgen.ts')],
    ...['--port', String(port), '--clients', String(o.clients), '--interval', String(o.intervalMs)],
    ...['--seconds', String(o.seconds), '--concurrency', String(o.concurrency), '--rounds', spec.rounds],
    ...['--settle', String(o.settleMs)],
    ...(o.browserHeaders ? ['--browser-headers'] : []),
    ...(spec.filteredShare ? ['--filtered-share', String(spec.filteredShare), '--filter', 'message,change'] : []),
  ];
}

/**
 * Runs the load generator against the server on `port` and reads the server at each
 * of its phases; returns the readings, the load generator's result, and the window's
 * wall-clock edges (for the CPU profile).
 */
async function underLoad(
  spec: ServerSpec,
  o: RunOptions,
  server: Running,
  port: number,
): Promise<{ readings: Readings; result: LoadgenResult; window: { start: number; end: number } }> {
  const pid = server.pid;
  const before = { rss: rssBytes(pid), fds: openFds(pid), cpu: cpuTicks(pid), overflows: listenOverflows() };
  const loadgen = spawnTracked(process.execPath, loadgenArgs(spec, o, port), {
    cwd: o.repoDir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const loadgenErr = tail(loadgen.stderr);
  const probe = new PhaseProbe(spec.name, o, pid, loadgen.pid as number, port, before.fds);
  createInterface({ input: loadgen.stdout as NodeJS.ReadableStream }).on('line', (line) => probe.onLine(line));

  const loadgenDeadlineMs =
    30_000 + o.settleMs + 2 * o.intervalMs + o.seconds * 1000 + 2 * o.intervalMs + 5000 + 30_000;
  if (!(await exited(loadgen, loadgenDeadlineMs))) {
    signal(loadgen, 'SIGKILL');
    throw new Error(`bench: loadgen did not finish within ${loadgenDeadlineMs} ms\n${loadgenErr()}`);
  }
  probe.rss.stop();
  if (!server.alive()) throw server.died();
  if (probe.result === null) {
    throw new Error(`bench: loadgen gave no result (exit ${loadgen.exitCode})\n${loadgenErr()}`);
  }
  const result: LoadgenResult = probe.result;
  const releasedAt = await probe.released;
  const after = await watchRssReturn(pid, before.rss, probe.leavingAt, o.afterMaxMs);
  const fdsAfter = await settledFds(pid);
  const [roundsAtStart, roundsAtEnd] = await Promise.all([probe.roundsAtStart, probe.roundsAtEnd]);
  const readings: Readings = {
    rssBefore: before.rss,
    fdsBefore: before.fds,
    cpuBefore: before.cpu,
    overflowsBefore: before.overflows,
    rssReady: probe.rssReady,
    cpuReady: probe.cpuReady,
    overflowsReady: probe.overflowsReady,
    window: { start: probe.w0, end: probe.w1 },
    rss: { peak: probe.rss.peak, sum: probe.rss.sum, samples: probe.rss.samples },
    roundsAtStart,
    roundsAtEnd,
    leavingAt: probe.leavingAt,
    releasedAt,
    rssAfter: after.rssAfter,
    nearStartAfterMs: after.nearStartAfterMs,
    fdsAfter,
  };
  return { readings, result, window: { start: probe.windowStartEpoch, end: probe.windowEndEpoch } };
}

/** Reads the server at each phase the load generator announces (see bench/loadgen.ts). */
class PhaseProbe {
  readonly rss: RssSampler;
  result: LoadgenResult | null = null;
  rssReady = 0;
  cpuReady = 0;
  overflowsReady = Number.NaN;
  w0: Counters = { cpu: 0, system: 0, loadgen: 0, machine: 0, t: 0 };
  w1: Counters = this.w0;
  windowStartEpoch = 0;
  windowEndEpoch = 0;
  roundsAtStart: Promise<number | null> = Promise.resolve(null);
  roundsAtEnd: Promise<number | null> = Promise.resolve(null);
  leavingAt = 0;
  /** When the server's descriptors were back (0: not within the timeout). */
  released: Promise<number> = Promise.resolve(0);
  readonly #name: string;
  readonly #o: RunOptions;
  readonly #pid: number;
  readonly #loadgenPid: number;
  readonly #port: number;
  readonly #fdsBefore: number;

  constructor(name: string, o: RunOptions, pid: number, loadgenPid: number, port: number, fdsBefore: number) {
    this.#name = name;
    this.#o = o;
    this.#pid = pid;
    this.#loadgenPid = loadgenPid;
    this.#port = port;
    this.#fdsBefore = fdsBefore;
    this.rss = new RssSampler(pid);
  }

  onLine(line: string): void {
    let msg: LoadgenMessage;
    try {
      msg = JSON.parse(line) as LoadgenMessage;
    } catch {
      process.stderr.write(`bench: loadgen: ${line}\n`);
      return;
    }
    if (msg.type === 'ready') this.#ready(msg as unknown as LoadgenResult['connect']);
    else if (msg.type === 'window-start') this.#windowStart(msg.windowStart as number);
    else if (msg.type === 'window-end') this.#windowEnd(msg.windowEnd as number);
    else if (msg.type === 'leaving') this.#leaving();
    else if (msg.type === 'result') this.result = msg as unknown as LoadgenResult;
    else if (msg.type === 'error') process.stderr.write(`bench: loadgen error: ${String(msg.error)}\n`);
  }

  #ready(c: LoadgenResult['connect']): void {
    this.cpuReady = cpuTicks(this.#pid);
    this.rssReady = rssBytes(this.#pid);
    this.overflowsReady = listenOverflows();
    const s = (c.allFirstEventsMs / 1000).toFixed(2);
    process.stderr.write(
      `bench: ${this.#name}: ${c.withFirstEvent}/${this.#o.clients} streams have their first event after ${s} s\n`,
    );
  }

  #windowStart(epoch: number): void {
    this.w0 = readCounters(this.#pid, this.#loadgenPid);
    this.windowStartEpoch = epoch;
    this.rss.start();
    this.roundsAtStart = checkRounds(this.#port);
    process.stderr.write(`bench: ${this.#name}: steady window of ${this.#o.seconds} s\n`);
  }

  #windowEnd(epoch: number): void {
    this.w1 = readCounters(this.#pid, this.#loadgenPid);
    this.windowEndEpoch = epoch;
    this.rss.stop(true);
    this.roundsAtEnd = checkRounds(this.#port);
  }

  #leaving(): void {
    this.leavingAt = now();
    this.released = waitForRelease(this.#pid, this.#fdsBefore, this.leavingAt);
  }
}

/**
 * The main thread's CPU profile of a --cpu-prof run, with the steady window's summary
 * printed; null if the server wrote none.
 */
function profileOf(name: string, dir: string, spawnedAt: number, window: Window): string | null {
  // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile (Node docs, --cpu-prof-name).
  const main = readdirSync(dir).find((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f));
  if (main === undefined) return null;
  const file = join(dir, main);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  // The profile clock starts with the process; the window is placed by wall time from the
  // spawn, good to a few tens of ms, and trimmed by 0.5 s at each edge.
  const fromS = (window.start - spawnedAt) / 1000 + 0.5;
  const toS = (window.end - spawnedAt) / 1000 - 0.5;
  process.stderr.write(
    `bench: ${name}: CPU profile ${relative(process.cwd(), file)}; steady window only:\n` +
      formatSummary(summarize(profile, { top: 20, fromS, toS })),
  );
  return file;
}
