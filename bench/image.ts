// bench/image.ts: the bench's --image mode: status-stream run as its image runs it. Builds the
// image (Dockerfile) on the engine and Node 24 base that scripts/docker-env.sh provides,
// starts it with `docker run --network host -e HOST=127.0.0.1 -e PORT=…`, and hands the
// runner the container's main process by its PID on this machine, so that /proc is read
// exactly as for a child. It stops every container it started, removes its image, and stops
// the engine only when docker-env.sh started a private one for this run.

import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { onKillAll, type Running, waitForHealthz } from './processes.ts';

const run = promisify(execFile);
const BUILD_TIMEOUT_MS = 600_000;
const STOP_GRACE_S = 8;

/** The built image and the engine it runs on. */
export interface Image {
  readonly tag: string;
  /** The base it was built on (NODE_BASE), its Node and its C library ("glibc 2.36", "musl"). */
  readonly base: string;
  readonly nodeVersion: string;
  readonly libc: string;
  /** The image's own NODE_OPTIONS (its ENV), which every container runs with. */
  readonly nodeOptions: string;
  readonly docker: string;
  /** The environment of every docker command (DOCKER_HOST of a private engine). */
  readonly env: Record<string, string>;
  /** docker-env.sh's directory for a private engine; '' when an engine was running already. */
  readonly engineDir: string;
}

/** docker-env.sh's `up` output: KEY=value lines. */
export function parseEnvLines(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && /^[A-Z_]+$/.test(line.slice(0, eq))) values[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  return values;
}

/**
 * The Node version and C library of a node binary, as `node -e` prints them inside the image:
 * process.report names the glibc it runs on, and nothing on musl.
 */
export const NODE_IDENTITY_SCRIPT =
  "const h = process.report.getReport().header; console.log(process.version + ' ' + " +
  "(h.glibcVersionRuntime ? 'glibc ' + h.glibcVersionRuntime : 'musl'))";

/** An engine (docker-env.sh up), the Node 24 base, and the image built from `repoDir`. */
export function imageUp(repoDir: string): Image {
  process.stderr.write('bench: image: docker engine and Node base (scripts/docker-env.sh up)\n');
  const out = execFileSync('bash', ['scripts/docker-env.sh', 'up'], {
    cwd: repoDir,
    encoding: 'utf8',
    timeout: BUILD_TIMEOUT_MS,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const values = parseEnvLines(out);
  const env: Record<string, string> = { ...(process.env as Record<string, string>) };
  for (const key of ['DOCKER_HOST', 'DOCKER_BUILDKIT'] as const) {
    const value = values[key] ?? '';
    if (value === '') delete env[key];
    else env[key] = value;
  }
  const docker = values.DOCKER || 'docker';
  const engineDir = values.DOCKER_ENV_DIR ?? '';
  const base = values.NODE_BASE ?? '';
  const tag = `status-stream-bench:${process.pid}`;
  const partial = { tag, base, docker, env, engineDir, nodeVersion: '', libc: '', nodeOptions: '' };
  // From here on an interrupted run removes the image and stops a private engine too.
  const forget = onKillAll(() => imageDownSync(partial));
  try {
    process.stderr.write(`bench: image: docker build on ${base}\n`);
    execFileSync(docker, ['build', '-q', '--network', 'none', '--build-arg', `NODE_IMAGE=${base}`, '-t', tag, '.'], {
      cwd: repoDir,
      env,
      timeout: BUILD_TIMEOUT_MS,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const identity = execFileSync(
      docker,
      ['run', '--rm', '--network', 'none', '--entrypoint', 'node', tag, '-e', NODE_IDENTITY_SCRIPT],
      { env, encoding: 'utf8', timeout: 60_000 },
    ).trim();
    const [nodeVersion = '', ...libc] = identity.split(' ');
    const imageEnv = JSON.parse(
      execFileSync(docker, ['image', 'inspect', '-f', '{{json .Config.Env}}', tag], { env, encoding: 'utf8' }),
    ) as string[];
    const nodeOptions = (imageEnv.find((e) => e.startsWith('NODE_OPTIONS=')) ?? 'NODE_OPTIONS=').slice(13);
    forget();
    const image: Image = { ...partial, nodeVersion, libc: libc.join(' '), nodeOptions };
    onKillAll(() => imageDownSync(image));
    return image;
  } catch (err) {
    forget();
    imageDownSync(partial);
    throw err;
  }
}

/** Images already removed by imageDownSync(): an interrupted run may ask twice. */
const removed = new Set<string>();

/** Removes the image and stops a private engine (docker-env.sh down, by its PID file); once. */
export function imageDownSync(image: Pick<Image, 'tag' | 'docker' | 'env' | 'engineDir'>): void {
  if (removed.has(image.tag)) return;
  removed.add(image.tag);
  try {
    execFileSync(image.docker, ['rmi', '-f', image.tag], { env: image.env, stdio: 'ignore', timeout: 60_000 });
  } catch {
    // not built, or the engine is gone
  }
  if (image.engineDir !== '') {
    execFileSync('bash', ['scripts/docker-env.sh', 'down'], {
      cwd: new URL('..', import.meta.url),
      env: { ...image.env, DOCKER_ENV_DIR: image.engineDir },
      stdio: ['ignore', 'ignore', 'inherit'],
      timeout: 120_000,
    });
  }
}

export interface ContainerLaunch {
  readonly name: string;
  readonly port: number;
  /** The container's environment on top of the image's (HOST and PORT are set here). */
  readonly env: Record<string, string>;
  /** host path -> container path, read-only unless `rw`. */
  readonly mounts: readonly { host: string; container: string; rw?: boolean }[];
  /** The open-files limit of the container (as the bench's own). */
  readonly nofile: number;
  readonly startTimeoutMs: number;
}

/** The `docker run` arguments of a container (exported for the tests). */
export function runArgs(image: Pick<Image, 'tag'>, container: string, launch: ContainerLaunch): string[] {
  const args = ['run', '-d', '--name', container, '--network', 'host'];
  args.push('--ulimit', `nofile=${launch.nofile}:${launch.nofile}`);
  const env = { ...launch.env, HOST: '127.0.0.1', PORT: String(launch.port) };
  for (const [key, value] of Object.entries(env)) args.push('-e', `${key}=${value}`);
  for (const m of launch.mounts) args.push('-v', `${m.host}:${m.container}${m.rw ? '' : ':ro'}`);
  args.push(image.tag);
  return args;
}

let containers = 0;

/** Starts a container of the image and waits for /healthz; the server as Running, by its host PID. */
export async function startContainer(image: Image, launch: ContainerLaunch): Promise<Running> {
  const container = `status-stream-bench-${process.pid}-${++containers}`;
  const docker = (args: string[], timeout = 60_000) => run(image.docker, args, { env: image.env, timeout });
  const remove = (): void => {
    try {
      execFileSync(image.docker, ['rm', '-f', container], { env: image.env, stdio: 'ignore', timeout: 60_000 });
    } catch {
      // gone already
    }
  };
  const forget = onKillAll(remove);
  const spawnedAt = performance.timeOrigin + performance.now();
  await docker(runArgs(image, container, launch));
  const logs = async (): Promise<string> => {
    try {
      const { stdout, stderr } = await docker(['logs', '--tail', '20', container]);
      return `${stdout}${stderr}`;
    } catch {
      return '';
    }
  };
  const pid = Number((await docker(['inspect', '-f', '{{.State.Pid}}', container])).stdout.trim());
  process.stderr.write(`bench: ${launch.name}: container ${container}, pid ${pid} on this machine\n`);
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return pid > 0;
    } catch {
      return false;
    }
  };
  let lastLogs = '';
  const server: Running = {
    pid,
    spawnedAt,
    alive,
    died: () => new Error(`bench: ${launch.name}: container ${container} exited\n${lastLogs}`),
    stop: async () => {
      try {
        await docker(['stop', '-t', String(STOP_GRACE_S), container], (STOP_GRACE_S + 30) * 1000);
      } finally {
        remove();
        forget();
      }
    },
  };
  try {
    await waitForHealthz({ name: launch.name, port: launch.port, timeoutMs: launch.startTimeoutMs }, alive, () => {
      throw server.died();
    });
  } catch (err) {
    lastLogs = await logs();
    await server.stop().catch(() => {});
    throw err instanceof Error ? new Error(`${err.message}\n${lastLogs}`) : err;
  }
  return server;
}
