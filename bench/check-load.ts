// bench/check-load.ts: what many checks cost the service: CPU (% of one core), RSS and the
// time to build and serialize one snapshot, with every check an HTTP check against a local
// target in its own process. Only 127.0.0.1; every child is killed by its PID, also when
// interrupted. Importable; runs only as a script:
//   node --import tsx bench/check-load.ts [--seconds 60] [--node PATH] [--scenarios 1000x10000,100x1000]
//       [--node-arg=--flag ...]
// Figures and how to read them: bench/README.md, "Check load".

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { intFlag } from './flags.ts';
import { clockTicksPerSecond, cpuTicks, rssBytes } from './measure.ts';
import { killChildrenOnExit, spawnTracked } from './processes.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HOST = '127.0.0.1';

export interface Scenario {
  readonly checks: number;
  readonly intervalMs: number;
}

export interface CheckLoadResult extends Scenario {
  readonly seconds: number;
  /** Service CPU over the window, % of one core. */
  readonly cpuPercent: number;
  /** VmRSS sampled once a second over the window: median and maximum, MiB. */
  readonly rssMiB: number;
  readonly rssMiBMax: number;
  /** Build + serialize time of a snapshot (status_snapshot_build_seconds), sampled each second. */
  readonly buildMsMedian: number;
  readonly buildMsMax: number;
  readonly snapshotBytes: number;
  /** The checks' latencies in the last snapshot, as the service measured them: median and p99, ms. */
  readonly latencyMsMedian: number;
  readonly latencyMsP99: number;
  /** Check runs the target answered in the window, against the runs expected. */
  readonly runs: number;
  readonly expectedRuns: number;
}

/** Parses "1000x10000" (checks x interval ms). */
export function parseScenario(text: string): Scenario {
  const m = /^(\d+)x(\d+)$/.exec(text);
  if (m === null) throw new Error(`check-load: a scenario is <checks>x<intervalMs>, got ${JSON.stringify(text)}`);
  return { checks: Number(m[1]), intervalMs: Number(m[2]) };
}

/** The CONFIG_FILE for a scenario: every check an HTTP check of its own path on `target`. */
export function configFor(scenario: Scenario, target: string): string {
  const checks = Array.from({ length: scenario.checks }, (_, i) => ({
    name: `c${String(i).padStart(4, '0')}`,
    url: `${target}/c${i}`,
    intervalMs: scenario.intervalMs,
    timeoutMs: Math.min(2000, scenario.intervalMs),
  }));
  return JSON.stringify({ checks });
}

function waitForLine(child: ChildProcess, pattern: RegExp, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdout = child.stdout;
    if (stdout === null) {
      reject(new Error('check-load: the child has no stdout pipe'));
      return;
    }
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`check-load: no ${pattern} within ${ms} ms`)), ms);
    stdout.setEncoding('utf8').on('data', (text: string) => {
      buffered += text;
      const line = buffered.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once('exit', (code) => reject(new Error(`check-load: exited with ${code}`)));
  });
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false, timeout: 10_000 }, (res) => {
        let body = '';
        res
          .setEncoding('utf8')
          .on('data', (t: string) => (body += t))
          .on('end', () => resolve(body));
      })
      .on('timeout', function (this: http.ClientRequest) {
        this.destroy(new Error(`check-load: GET ${url} timed out`));
      })
      .on('error', reject);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs one scenario for `seconds` after one interval of warm-up; kills what it started. */
export async function runScenario(
  scenario: Scenario,
  seconds: number,
  node: string | null,
  nodeArgs: readonly string[] = [],
): Promise<CheckLoadResult> {
  // The target counts the requests it answers; it runs in its own process so that its
  // CPU is not the service's.
  const target = spawnTracked(
    process.execPath,
    [
      '-e',
      `
    let n = 0;
    require('node:http').createServer((q, s) => { n++; s.end('ok'); })
      .listen(0, '${HOST}', function () { console.log(JSON.stringify({ port: this.address().port })); });
    process.on('message', () => process.send(n));
  `,
    ],
    { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] },
  );
  const dir = mkdtempSync(join(tmpdir(), 'check-load-'));
  let service: ChildProcess | null = null;
  try {
    const targetPort = (JSON.parse(await waitForLine(target, /"port"/, 10_000)) as { port: number }).port;
    const configFile = join(dir, 'checks.json');
    writeFileSync(configFile, configFor(scenario, `http://${HOST}:${targetPort}`));
    // As `npm start` and the image run it (package.json, Dockerfile): 2 MiB semi-spaces.
    const loader = node === null ? ['--import', 'tsx'] : [];
    const args = ['--max-semi-space-size=2', ...nodeArgs, ...loader, 'server.ts'];
    service = spawnTracked(node ?? process.execPath, args, {
      cwd: ROOT,
      env: {
        ...process.env,
        HOST,
        PORT: '0',
        CONFIG_FILE: configFile,
        STATUS_INTERVAL_MS: String(scenario.intervalMs),
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const pid = service.pid;
    if (pid === undefined) throw new Error('check-load: the service could not be started');
    // LOG_LEVEL=warn hides "listening": ask the kernel instead, through /proc.
    const port = await findPort(pid);
    const base = `http://${HOST}:${port}`;
    await sleep(scenario.intervalMs + 2000);
    const countRuns = (): Promise<number> =>
      new Promise((resolve) => {
        target.once('message', (n) => resolve(n as number));
        target.send('count');
      });
    const runs0 = await countRuns();
    const ticks0 = cpuTicks(pid);
    const started = performance.now();
    const builds: number[] = [];
    const rss: number[] = [];
    let snapshotBytes = 0;
    while (performance.now() - started < seconds * 1000) {
      await sleep(1000);
      const metrics = await get(`${base}/metrics`);
      const line = metrics.split('\n').find((l) => l.startsWith('status_snapshot_build_seconds '));
      if (line !== undefined) builds.push(Number(line.split(' ')[1]) * 1000);
      rss.push(rssBytes(pid) / 1048576);
    }
    const elapsedS = (performance.now() - started) / 1000;
    const cpuPercent = ((cpuTicks(pid) - ticks0) / clockTicksPerSecond() / elapsedS) * 100;
    const runs = (await countRuns()) - runs0;
    const status = await get(`${base}/status`);
    snapshotBytes = Buffer.byteLength(status);
    const latencies = (JSON.parse(status) as { checks: { latencyMs: number | null }[] }).checks
      .map((c) => c.latencyMs ?? Number.NaN)
      .sort((a, b) => a - b);
    const percentile = (p: number): number => latencies[Math.floor(p * (latencies.length - 1))] ?? 0;
    builds.sort((a, b) => a - b);
    rss.sort((a, b) => a - b);
    return {
      ...scenario,
      seconds: Math.round(elapsedS),
      cpuPercent: Math.round(cpuPercent * 10) / 10,
      rssMiB: Math.round((rss[rss.length >> 1] ?? 0) * 10) / 10,
      rssMiBMax: Math.round((rss.at(-1) ?? 0) * 10) / 10,
      buildMsMedian: Math.round((builds[builds.length >> 1] ?? 0) * 100) / 100,
      buildMsMax: Math.round((builds.at(-1) ?? 0) * 100) / 100,
      snapshotBytes,
      latencyMsMedian: percentile(0.5),
      latencyMsP99: percentile(0.99),
      runs,
      expectedRuns: Math.round((scenario.checks * elapsedS * 1000) / scenario.intervalMs),
    };
  } finally {
    if (service?.pid !== undefined && service.exitCode === null) process.kill(service.pid, 'SIGKILL');
    if (target.pid !== undefined && target.exitCode === null) process.kill(target.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

// The service's listening port, from the inodes of its sockets and /proc/net/tcp.
async function findPort(pid: number): Promise<number> {
  const { readdirSync, readlinkSync, readFileSync } = await import('node:fs');
  for (let i = 0; i < 200; i++) {
    await sleep(100);
    let inodes: Set<string>;
    try {
      inodes = new Set(
        readdirSync(`/proc/${pid}/fd`).map((fd) => {
          try {
            return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? '';
          } catch {
            return '';
          }
        }),
      );
    } catch {
      continue;
    }
    for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // st 0A = LISTEN
      const [, local = '', , state, , , , , , inode = ''] = f;
      if (state === '0A' && inodes.has(inode)) return Number.parseInt(local.split(':')[1] ?? '', 16);
    }
  }
  throw new Error('check-load: the service never listened');
}

export function formatResults(results: readonly CheckLoadResult[], nodeName: string): string {
  const rows = results.map(
    (r) =>
      `| ${r.checks} | ${r.intervalMs / 1000} s | ${r.cpuPercent} % | ${r.rssMiB} / ${r.rssMiBMax} MiB | ` +
      `${r.buildMsMedian} / ${r.buildMsMax} ms | ${(r.snapshotBytes / 1024).toFixed(1)} KiB | ` +
      `${r.latencyMsMedian} / ${r.latencyMsP99} ms | ${r.runs} / ${r.expectedRuns} |`,
  );
  return [
    `check load on ${nodeName}`,
    '',
    '| checks | interval | CPU (one core) | RSS median / max | snapshot build median / max | snapshot | check latency median / p99 | runs / expected |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '60' },
      node: { type: 'string' },
      scenarios: { type: 'string', default: '1000x10000,100x1000' },
      'node-arg': { type: 'string', multiple: true, default: [] },
    },
  });
  const seconds = intFlag('check-load', 'seconds', values.seconds, 1, 3600);
  killChildrenOnExit('check-load');
  const node = values.node ?? null;
  const results: CheckLoadResult[] = [];
  for (const text of values.scenarios.split(',')) {
    results.push(await runScenario(parseScenario(text), seconds, node, values['node-arg']));
  }
  const version =
    node === null
      ? process.version
      : await new Promise<string>((resolve) => {
          const child = spawn(node, ['--version']);
          let out = '';
          child.stdout.on('data', (t: Buffer) => (out += t));
          child.on('exit', () => resolve(out.trim()));
        });
  process.stdout.write(`${formatResults(results, `Node ${version}${node === null ? ' (tsx)' : ''}`)}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(1);
  });
}
