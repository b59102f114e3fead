// bench/processes.ts: process control for the bench: starts the servers and the load
// generator as child processes bound to 127.0.0.1, remembers every one, and stops them by
// PID. It never signals a process it did not start, and importing it starts nothing.

import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { createServer, request } from 'node:http';

export const HOST = '127.0.0.1';
/** How long a server may take to exit after SIGTERM before it gets SIGKILL. */
const STOP_TIMEOUT_MS = 8000;
const HEALTH_POLL_MS = 100;

/** Every child started through spawnTracked(), so that killAll() can reach it by PID. */
const children = new Set<ChildProcess>();

/** spawn(), remembering the child for killAll(). */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, options);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Sends `name` to the child's PID, unless it has exited already. */
export function signal(child: ChildProcess, name: NodeJS.Signals): void {
  if (child.pid === undefined || !isRunning(child)) return;
  try {
    process.kill(child.pid, name);
  } catch {
    // exited in between
  }
}

/** What killAll() must also undo that is not a child: a container, a private Docker engine. */
const cleanups = new Set<() => void>();

/** Runs `undo` (synchronous) in killAll(), unless the returned function is called first. */
export function onKillAll(undo: () => void): () => void {
  cleanups.add(undo);
  return () => cleanups.delete(undo);
}

/** SIGKILL to every child still running, then the registered clean-ups, newest first. */
export function killAll(): void {
  for (const child of children) signal(child, 'SIGKILL');
  for (const undo of [...cleanups].reverse()) {
    cleanups.delete(undo);
    try {
      undo();
    } catch {
      // best effort: the process is on its way out
    }
  }
}

/**
 * Kills every child when the bench is interrupted or exits, by PID. Called by the CLI's
 * main() only: a module that imports this one keeps its own signal handling.
 */
export function killChildrenOnExit(program: string): void {
  process.once('SIGINT', () => {
    process.stderr.write(`${program}: interrupted; stopping children\n`);
    killAll();
    process.exit(130);
  });
  process.once('SIGTERM', () => {
    killAll();
    process.exit(143);
  });
  process.on('exit', killAll);
}

/** true once the child has exited, false if `timeoutMs` passes first. */
export function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (!isRunning(child)) return Promise.resolve(true);
  return new Promise((resolveExit) => {
    const timer = setTimeout(() => resolveExit(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolveExit(true);
    });
  });
}

/** SIGTERM (the servers shut down cleanly, and --cpu-prof writes its profile), then SIGKILL. */
export async function stop(child: ChildProcess): Promise<void> {
  signal(child, 'SIGTERM');
  if (!(await exited(child, STOP_TIMEOUT_MS))) {
    signal(child, 'SIGKILL');
    await exited(child, 2000);
  }
}

/** Keeps the last `limit` characters a child wrote, for the error message if it dies. */
export function tail(stream: NodeJS.ReadableStream | null, limit = 8192): () => string {
  let text = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    text = (text + chunk).slice(-limit);
  });
  return () => text;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
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

/** GET http://127.0.0.1:port/path, with a deadline; the body is kept up to 1 MiB. */
export function get(port: number, path: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
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

/**
 * The inherited environment without `remove` (so that a developer's shell cannot change
 * what is measured), with `set` on top.
 */
export function childEnv(remove: readonly string[], set: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !remove.includes(k)) env[k] = v;
  return Object.assign(env, set);
}

/** A measured server, wherever it runs: its PID on this machine, whether it runs, how to stop it. */
export interface Running {
  readonly pid: number;
  /** performance-clock epoch ms of the start, to place a CPU profile's samples. */
  readonly spawnedAt: number;
  alive(): boolean;
  /** The error to throw when the server died: its exit and the last of its output. */
  died(): Error;
  /** Stops it (SIGTERM, then SIGKILL) and waits for it to be gone. */
  stop(): Promise<void>;
}

/** A server child as Running. */
export function running(server: StartedServer): Running {
  return {
    pid: server.pid,
    spawnedAt: server.spawnedAt,
    alive: () => isRunning(server.child),
    died: () => server.died(),
    stop: () => stop(server.child),
  };
}

/** A server child started by startServer(). */
export interface StartedServer {
  readonly child: ChildProcess;
  readonly pid: number;
  /** performance-clock epoch ms of the spawn, to place a CPU profile's samples. */
  readonly spawnedAt: number;
  /** The error to throw when the server died: its exit and the last of its output. */
  died(): Error;
}

export interface ServerLaunch {
  readonly name: string;
  readonly node: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Record<string, string>;
  readonly port: number;
  readonly startTimeoutMs: number;
}

/** Spawns a server and waits until its /healthz answers 200, or fails naming why. */
export async function startServer(launch: ServerLaunch): Promise<StartedServer> {
  const spawnedAt = performance.timeOrigin + performance.now();
  const stdio: SpawnOptions['stdio'] = ['ignore', 'pipe', 'pipe'];
  const child = spawnTracked(launch.node, launch.args, { cwd: launch.cwd, env: launch.env, stdio });
  const out = tail(child.stdout);
  const err = tail(child.stderr);
  const pid = child.pid as number;
  process.stderr.write(`bench: ${launch.name}: pid ${pid}\n`);
  const started: StartedServer = {
    child,
    pid,
    spawnedAt,
    died: () => {
      const how = `code ${child.exitCode}, signal ${child.signalCode}`;
      return new Error(`bench: ${launch.name} exited (${how})\n${err()}\n${out()}`);
    },
  };
  try {
    await waitForHealth(started, launch, err);
  } catch (error) {
    await stop(child);
    throw error;
  }
  return started;
}

async function waitForHealth(server: StartedServer, launch: ServerLaunch, stderr: () => string): Promise<void> {
  const alive = (): boolean => isRunning(server.child);
  await waitForHealthz({ name: launch.name, port: launch.port, timeoutMs: launch.startTimeoutMs }, alive, () => {
    throw server.died();
  }).catch((err: unknown) => {
    throw err instanceof Error && err.message.includes('/healthz') ? new Error(`${err.message}\n${stderr()}`) : err;
  });
}

/** Waits until GET /healthz on `port` answers 200; calls `dead` (which throws) once `alive` says no. */
export async function waitForHealthz(
  target: { name: string; port: number; timeoutMs: number },
  alive: () => boolean,
  dead: () => never,
): Promise<void> {
  const deadline = Date.now() + target.timeoutMs;
  for (;;) {
    if (!alive()) dead();
    try {
      if ((await get(target.port, '/healthz', 1000)).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new Error(`bench: ${target.name} did not answer /healthz within ${target.timeoutMs} ms`);
    }
    await sleep(HEALTH_POLL_MS);
  }
}
