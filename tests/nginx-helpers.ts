// tests/nginx-helpers.ts: runs real Nginx with variants of deploy/nginx.conf, for the
// end-to-end suites. Each Nginx is a foreground process (`daemon off`) with its own
// prefix in a temp directory and its own 127.0.0.1 port; it never touches the system
// service, /etc/nginx or /var/lib/nginx. It knows nothing of SSE.

import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort, ROOT, sleep, withDeadline } from './helpers.ts';

/** The nginx binary: Debian's /usr/sbin/nginx, else the first on PATH, else the Debian path. */
export const NGINX_BIN: string =
  [
    '/usr/sbin/nginx',
    ...(process.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((dir) => join(dir, 'nginx')),
  ].find((path) => existsSync(path)) ?? '/usr/sbin/nginx';

const CONFIG_PATH = join(ROOT, 'deploy', 'nginx.conf');

/** A text edit of the config: `from` must occur in it, or the test fails (the file drifted). */
export type Edit = readonly [from: string | RegExp, to: string];

export interface NginxOptions {
  /** Ports of the status-stream replicas, in upstream order. */
  readonly upstreams: readonly number[];
  /** More edits, applied after the listen and upstream ones. */
  readonly edits?: readonly Edit[];
}

export interface Nginx {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly stderr: string[];
  /** Fast shutdown (SIGTERM: open streams are cut), then the prefix is removed. */
  stop(): Promise<void>;
}

/**
 * deploy/nginx.conf as a test runs it: listening on 127.0.0.1:`port`, the upstream's
 * `server` lines replaced by `upstreams` (keeping their parameters), one worker (so that
 * round-robin is predictable), then `edits`.
 */
export function nginxConfig(port: number, options: NginxOptions): string {
  const serverLines = /^([ \t]*)server 127\.0\.0\.1:\d+([^;\n]*);\n(?:[ \t]*server 127\.0\.0\.1:\d+[^;\n]*;\n)*/m;
  const edits: Edit[] = [
    [/^([ \t]*)listen 8080;$/m, `$1listen 127.0.0.1:${port};`],
    [/^worker_processes auto;$/m, 'worker_processes 1;'],
    [serverLines, ''],
    ...(options.edits ?? []),
  ];
  let text = readFileSync(CONFIG_PATH, 'utf8');
  for (const [from, to] of edits) {
    const found = typeof from === 'string' ? text.includes(from) : from.test(text);
    if (!found) throw new Error(`nginx-helpers: deploy/nginx.conf no longer contains ${String(from)}`);
    text =
      from === serverLines
        ? text.replace(serverLines, (_all, indent: string, params: string) =>
            options.upstreams.map((p) => `${indent}server 127.0.0.1:${p}${params};\n`).join(''),
          )
        : text.replace(from, to);
  }
  return text;
}

/** Starts Nginx in the foreground on a free port; resolves once it accepts connections. */
export async function startNginx(options: NginxOptions): Promise<Nginx> {
  if (!existsSync(NGINX_BIN)) throw new Error(`nginx not found at ${NGINX_BIN} (REQUIRE_E2E=1 makes this a failure)`);
  const prefix = mkdtempSync(join(tmpdir(), 'status-stream-nginx-'));
  // Run as root, Nginx's workers switch to `nobody`; they need to reach the temp
  // directories it creates in the prefix.
  chmodSync(prefix, 0o755);
  const port = await freePort();
  const confPath = join(prefix, 'nginx.conf');
  writeFileSync(confPath, nginxConfig(port, options));
  // -e stderr: the error log before the config is read (the compiled-in default may be a
  // root-owned file); -g 'daemon off;': stay in the foreground so we own the PID.
  const child = spawn(NGINX_BIN, ['-p', `${prefix}/`, '-c', confPath, '-e', 'stderr', '-g', 'daemon off;'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stderr: string[] = [];
  child.stderr.setEncoding('utf8').on('data', (text: string) => stderr.push(text));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const cleanup = (): void => rmSync(prefix, { recursive: true, force: true });

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGTERM');
    try {
      await withDeadline(exited, 5000, 'nginx fast shutdown');
    } catch {
      if (child.exitCode === null) process.kill(child.pid!, 'SIGKILL');
      await exited;
    } finally {
      cleanup();
    }
  };

  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  try {
    await withDeadline(
      (async () => {
        while (!(await accepts(port))) {
          if (gone) throw new Error(`nginx exited at start-up: ${stderr.join('')}`);
          await sleep(50);
        }
      })(),
      10_000,
      'nginx start-up',
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `http://127.0.0.1:${port}`, port, pid: child.pid!, stderr, stop };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
