// bench/full-helper.ts: the world around status-stream in the bench's full scenario, run as a
// process of its own so that none of its work counts as the server's: the HTTP targets of the
// checks (50 unless --checks says), two alert receivers, and an app that POSTs one event a
// second to /publish.
// fullConfig() writes the CONFIG_FILE that points the service at it. It listens on 127.0.0.1
// only, sends nothing but to the service it is told about, and exits at its deadline.
//
// It talks to bench/server-run.ts with one JSON object a line:
//   stdout {"type":"ready","targets":PORT,"receivers":[PORT,PORT]}
//   stdin  {"type":"publish","port":PORT,"token":"…"}   start publishing to the service
//   stdin  {"type":"report","from":MS,"to":MS}          -> stdout {"type":"report",…}
// and exits when its stdin ends.
//
//   node --import tsx bench/full-helper.ts [--app-every 1000] [--deadline 900]

import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { intFlag } from './flags.ts';
import type { WorldReport } from './measure.ts';
import { exited, spawnTracked, stop, tail } from './processes.ts';

const HOST = '127.0.0.1';
/** How many checks the full scenario configures, unless `npm run bench -- --checks` says. */
export const FULL_CHECKS = 50;
/** The fewest: a critical one, the slow one and the flapper. */
export const MIN_FULL_CHECKS = 3;
/** Critical checks: 3, never the slow one or the flapper, so the overall status stays degraded. */
export function criticalChecks(count: number): number {
  return Math.min(3, count - 2);
}
/** Every check runs every 5 s (twice as often as the service's default interval), the flapper every second. */
export const CHECK_INTERVAL_MS = 5000;
/** The last check's target answers 200 and 503 in turn, this long each. */
export const FLAP_HALF_PERIOD_MS = 10_000;
/** The one before it is always slower than its degradedMs: the overall status stays degraded. */
const SLOW_MS = 150;

/** The checks the full scenario configures: how many, and how often each runs (the flapper: every second). */
export interface CheckLoad {
  readonly count: number;
  readonly intervalMs: number;
}

export const DEFAULT_CHECK_LOAD: CheckLoad = { count: FULL_CHECKS, intervalMs: CHECK_INTERVAL_MS };
/** The app event's name; the filtered streams do not ask for it. */
export const APP_EVENT = 'deploy';
const HEALTH_BODY = JSON.stringify({
  status: 'UP',
  components: { db: { status: 'UP' }, disk: { status: 'UP', free: 52_428_800 }, queue: { status: 'UP' } },
});

/**
 * The CONFIG_FILE of the full scenario: `load.count` HTTP checks against the helper's targets,
 * each with conditions (status ranges, bodyContains, a JSON path, degradedMs), a few critical
 * ones, flap suppression, and two alert receivers (json and slack).
 */
export function fullConfig(
  targetsPort: number,
  receiverPorts: readonly [number, number],
  load: CheckLoad = DEFAULT_CHECK_LOAD,
): string {
  if (!Number.isSafeInteger(load.count) || load.count < MIN_FULL_CHECKS) {
    throw new RangeError(`full scenario: at least ${MIN_FULL_CHECKS} checks, got ${load.count}`);
  }
  const base = `http://${HOST}:${targetsPort}`;
  const flapper = load.count - 1;
  const slow = load.count - 2;
  const checks = Array.from({ length: load.count }, (_, i) => {
    const name = `svc-${String(i).padStart(2, '0')}`;
    const common = {
      name,
      timeoutMs: 2000,
      intervalMs: load.intervalMs,
      ...(i < criticalChecks(load.count) ? { critical: true } : {}),
      ...(i % 2 === 0 ? { failuresToDown: 2 } : {}),
      ...(i % 4 === 0 ? { successesToUp: 2 } : {}),
    };
    if (i === flapper) return { ...common, url: `${base}/flap/${i}`, intervalMs: 1000, failuresToDown: 2 };
    if (i === slow) return { ...common, url: `${base}/slow/${i}`, degradedMs: 100 };
    switch (i % 5) {
      case 0:
        return { ...common, url: `${base}/health/${i}`, expect: { status: '200-299' } };
      case 1:
        return {
          ...common,
          url: `${base}/health/${i}`,
          expect: { json: { path: 'components.db.status', equals: 'UP' } },
        };
      case 2:
        return { ...common, url: `${base}/health/${i}`, expect: { bodyContains: '"status":"UP"' } };
      case 3:
        return { ...common, url: `${base}/empty/${i}`, expect: { status: 204 } };
      default:
        return {
          ...common,
          url: `${base}/health/${i}?region=eu`,
          expect: { status: [200, '300-308'] },
          degradedMs: 500,
        };
    }
  });
  const alerts = [
    { url: `http://${HOST}:${receiverPorts[0]}/hook`, format: 'json' },
    { url: `http://${HOST}:${receiverPorts[1]}/services/T0/B0/x`, format: 'slack', on: ['down', 'up'] },
  ];
  return `${JSON.stringify({ checks, alerts }, null, 2)}\n`;
}

/** Whether the flapper's target answers 503 at `ms` (epoch). */
export function flapperDown(ms: number): boolean {
  return Math.floor(ms / FLAP_HALF_PERIOD_MS) % 2 === 1;
}

const now = (): number => performance.timeOrigin + performance.now();

function emit(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
}

interface Publish {
  t: number;
  status: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { 'app-every': { type: 'string', default: '1000' }, deadline: { type: 'string', default: '900' } },
    strict: true,
  });
  const appEveryMs = intFlag('full-helper', 'app-every', values['app-every'], 50, 60_000);
  const deadlineS = intFlag('full-helper', 'deadline', values.deadline, 1, 3600);
  setTimeout(() => process.exit(1), deadlineS * 1000).unref();

  const targetRequests = { total: 0 };
  const targets = http.createServer((req, res) => {
    targetRequests.total++;
    const path = req.url ?? '/';
    if (path.startsWith('/empty/')) {
      res.writeHead(204).end();
    } else if (path.startsWith('/flap/')) {
      const down = flapperDown(Date.now());
      res.writeHead(down ? 503 : 200, { 'content-type': 'text/plain' }).end(down ? 'unavailable' : 'ok');
    } else if (path.startsWith('/slow/')) {
      setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok'), SLOW_MS);
    } else {
      res.writeHead(200, { 'content-type': 'application/json' }).end(HEALTH_BODY);
    }
  });
  const alerts: number[][] = [[], []];
  const receiver = (index: number): http.Server =>
    http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        alerts[index]?.push(now());
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      });
    });
  const receivers = [receiver(0), receiver(1)];
  const targetsPort = await listen(targets);
  const receiverPorts = [await listen(receivers[0] as http.Server), await listen(receivers[1] as http.Server)];
  emit({ type: 'ready', targets: targetsPort, receivers: receiverPorts });

  // The app: one keep-alive connection, as an app's HTTP client would hold.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const published: Publish[] = [];
  let timer: NodeJS.Timeout | null = null;
  let n = 0;
  const publish = (port: number, token: string): void => {
    const t = now();
    n++;
    const body = JSON.stringify({
      event: APP_EVENT,
      data: { time: new Date(t).toISOString(), n, version: `1.4.${n}`, by: 'ci' },
    });
    const req = http.request(
      {
        host: HOST,
        port,
        path: '/publish',
        method: 'POST',
        agent,
        timeout: 10_000,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        published.push({ t, status: res.statusCode ?? 0 });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => published.push({ t, status: 0 }));
    req.end(body);
  };

  createInterface({ input: process.stdin }).on('line', (line) => {
    const msg = JSON.parse(line) as { type: string; port?: number; token?: string; from?: number; to?: number };
    if (msg.type === 'publish' && timer === null) {
      const port = msg.port ?? 0;
      const token = msg.token ?? '';
      timer = setInterval(() => publish(port, token), appEveryMs);
    } else if (msg.type === 'report') {
      const from = msg.from ?? 0;
      const to = msg.to ?? Number.POSITIVE_INFINITY;
      const inWindow = (t: number): boolean => t >= from && t < to;
      emit({
        type: 'report',
        published: published.filter((p) => p.status === 202).length,
        publishedInWindow: published.filter((p) => p.status === 202 && inWindow(p.t)).length,
        publishFailed: published.filter((p) => p.status !== 202).length,
        alerts: alerts.map((a) => a.length),
        alertsInWindow: alerts.map((a) => a.filter(inWindow).length),
        targetRequests: targetRequests.total,
      });
    }
  });
  process.stdin.on('end', () => process.exit(0));
}

/** The helper as the runner sees it: where its files are, and what it did. */
export interface World {
  /** The directory of the CONFIG_FILE (config.json) and of the STATE_DIR (state/). */
  readonly dir: string;
  readonly configFile: string;
  readonly stateDir: string;
  /** PUBLISH_TOKEN: the service's and the app's. */
  readonly token: string;
  /** Starts the app's events to the service on `port`. */
  publishTo(port: number): void;
  /** What the helper saw, with app events and alerts counted in [from, to) too (epoch ms). */
  report(from: number, to: number): Promise<WorldReport>;
  /** Stops the helper by PID and removes the directory. */
  stop(): Promise<void>;
}

/**
 * Starts the helper (bench/full-helper.ts, a child of this Node) and writes the CONFIG_FILE
 * that points at it, in a new temporary directory. `shared`: readable by the image's user.
 */
export async function startWorld(o: {
  benchDir: string;
  appEveryMs: number;
  checks: CheckLoad;
  shared: boolean;
}): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'status-stream-bench-'));
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir);
  const helper = spawnTracked(
    process.execPath,
    ['--import', 'tsx', join(o.benchDir, 'full-helper.ts'), '--app-every', String(o.appEveryMs)],
    { cwd: join(o.benchDir, '..'), stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const stderr = tail(helper.stderr);
  const lines = createInterface({ input: helper.stdout as NodeJS.ReadableStream });
  const waiting: Array<(message: Record<string, unknown>) => void> = [];
  lines.on('line', (line) => {
    try {
      waiting.shift()?.(JSON.parse(line) as Record<string, unknown>);
    } catch {
      process.stderr.write(`bench: full-helper: ${line}\n`);
    }
  });
  const next = (what: string): Promise<Record<string, unknown>> =>
    new Promise((resolveNext, reject) => {
      const timer = setTimeout(() => reject(new Error(`bench: full-helper sent no ${what}\n${stderr()}`)), 10_000);
      waiting.push((message) => {
        clearTimeout(timer);
        resolveNext(message);
      });
    });
  const stopHelper = async (): Promise<void> => {
    helper.stdin?.end();
    if (!(await exited(helper, 2000))) await stop(helper);
  };
  try {
    const ready = await next('ready');
    const receivers = ready.receivers as [number, number];
    const configFile = join(dir, 'config.json');
    writeFileSync(configFile, fullConfig(ready.targets as number, receivers, o.checks));
    if (o.shared) {
      // The image runs as the node user (uid 1000): it reads the config and owns STATE_DIR.
      chmodSync(dir, 0o755);
      chmodSync(configFile, 0o644);
      if (process.getuid?.() === 0) chownSync(stateDir, 1000, 1000);
      else chmodSync(stateDir, 0o777);
    }
    const token = randomBytes(24).toString('hex');
    return {
      dir,
      configFile,
      stateDir,
      token,
      publishTo: (port) => helper.stdin?.write(`${JSON.stringify({ type: 'publish', port, token })}\n`),
      report: async (from, to) => {
        const answer = next('report');
        helper.stdin?.write(`${JSON.stringify({ type: 'report', from, to })}\n`);
        return (await answer) as unknown as WorldReport;
      },
      stop: async () => {
        await stopHelper();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stopHelper();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  main().catch((err: unknown) => {
    process.stderr.write(`full-helper: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
