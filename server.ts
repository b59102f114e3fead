// server.ts: the HTTP edge. It wires the parts together (config, the poller, the hub, the
// routes) and owns the lifecycle: listen, then drain and close on a signal. Data flows one
// way: checks -> snapshot -> one serialized frame -> every stream.
// It never formats an SSE frame, never runs a check, and answers no route itself.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Alerter } from './alerts.ts';
import { type Config, ConfigError, HELP, parseConfig, redactedConfig } from './config.ts';
import { loadMonitorConfig, watchConfigFile } from './config-file.ts';
import { createAccess } from './http/access.ts';
import {
  admitPipelined,
  guardConnections,
  parseFromFirstBytes,
  serverOptions,
  type UnreadConnections,
} from './http/connections.ts';
import { preparePage } from './http/page.ts';
import { createRouter } from './http/router.ts';
import { createRoutes } from './http/routes.ts';
import { createLogger, type Logger } from './log.ts';
import { keepMemoryReducerWorking } from './memory-reducer.ts';
import { SseHub } from './sse.ts';
import { ServiceState } from './state.ts';
import { StateStore } from './state-store.ts';
import { type Latest, StatusPoller } from './status.ts';

// The kernel caps this at net.core.somaxconn (4096 on current Linux). Node's default, 511,
// overflows when thousands of clients reconnect at once (after a replica restart), and the
// dropped SYNs are retried only after 1 s, 3 s, 7 s.
const LISTEN_BACKLOG = 4096;

export interface StartOptions {
  readonly log: Logger;
  /** The HTML of the status page; read from page.html beside this file by default. */
  readonly page?: string;
  /** The version snapshots report; package.json's by default. */
  readonly version?: string;
}

export interface RunningServer {
  readonly server: http.Server;
  readonly hub: SseHub;
  readonly poller: StatusPoller;
  readonly state: ServiceState;
  readonly alerter: Alerter;
  readonly port: number;
  readonly url: string;
  /** Reads CONFIG_FILE again; a bad one is logged and counted, and the old one stays. */
  reload(): void;
  /** Drains every stream and socket; resolves when all are closed or the grace ran out. */
  shutdown(): Promise<void>;
}

/**
 * Builds the server and listens. Rejects with a ConfigError when CONFIG_FILE or STATE_DIR
 * cannot be used, and with the listen error when the port cannot be bound.
 */
export async function startServer(config: Config, options: StartOptions): Promise<RunningServer> {
  const { log } = options;
  const version = options.version ?? readVersion();
  const page = preparePage(options.page ?? readFileSync(new URL('./page.html', import.meta.url), 'utf8'));
  const loaded = loadMonitorConfig(config);
  // Every problem at once: a bad STATE_DIR is listed beside the file's, as --check-config lists them.
  if (loaded.problems.length > 0) throw new ConfigError([...loaded.problems, ...stateDirProblems(config)]);
  let monitor = loaded.monitor;
  let state: ServiceState;
  try {
    state = ServiceState.open(config.stateDir, log);
  } catch (err) {
    throw new ConfigError([`config: ${(err as Error).message}`]);
  }
  let draining = false;

  const hub = createHub(config, log);

  // Maintenance: transitions are still recorded and streamed, but nobody is paged.
  const alerter = new Alerter({
    targets: monitor.alerts,
    log,
    suppressed: () => state.announcement?.maintenance === true,
  });
  const service = { hostname: hostname(), version, title: config.title };
  // History of checks no longer configured is dropped, as a reload drops a removed check's.
  state.keepOnly(monitor.checks.map((c) => c.name));
  const poller = new StatusPoller({
    checks: monitor.checks,
    intervalMs: config.intervalMs,
    heartbeatMs: config.heartbeatMs,
    title: config.title,
    version,
    context: { pushes: state.pushes, startedAtMs: Date.now() },
    clients: () => hub.size,
    announcement: () => state.announcement,
    history: state.history,
    onSnapshot: (latest: Latest) => hub.publishSnapshot(latest.json),
    onTransition: (transition, overall) => {
      state.history.addTransition(transition);
      hub.publishEvent('change', JSON.stringify(transition));
      alerter.notify(transition, { ...service, status: overall });
    },
    log,
  });

  const reloads = { ok: 0, error: 0 };
  function reload(): void {
    const next = loadMonitorConfig(config);
    if (next.problems.length > 0) {
      reloads.error++;
      for (const problem of next.problems) log.error('config reload refused: the old configuration stays', { problem });
      return;
    }
    if (next.monitor.digest === monitor.digest) return;
    monitor = next.monitor;
    poller.setChecks(monitor.checks);
    state.keepOnly(monitor.checks.map((c) => c.name));
    alerter.setTargets(monitor.alerts);
    reloads.ok++;
    log.info('config reloaded', { checks: monitor.checks.length, alerts: monitor.alerts.length });
  }

  const server = http.createServer(serverOptions(config));
  const connections = guardConnections(server, config, log);
  const unread = parseFromFirstBytes(server, config.headersTimeoutMs);
  const access = createAccess(config);
  const routes = createRoutes({
    config,
    hub,
    poller,
    page,
    access,
    connections,
    state,
    alerter,
    reloads,
    draining: () => draining,
  });
  const route = createRouter({
    routes,
    access,
    corsOrigins: config.corsOrigins,
    onError: (path, err) => log.error('request failed', { path, err: err instanceof Error ? err : String(err) }),
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (!admitPipelined(req, res)) return;
    // While draining, each answer closes its connection, so keep-alive sockets go away.
    if (draining) res.setHeader('Connection', 'close');
    route(req, res);
  });

  await listen(server, config);
  poller.start();
  state.startSaving();
  const stopWatching =
    config.configFile === null
      ? () => {}
      : watchConfigFile(config.configFile, reload, (err) => {
          log.warn('watching CONFIG_FILE failed: it is reloaded on SIGHUP only', { err });
        });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  log.info('listening', {
    address: address.address,
    port: address.port,
    url: `http://${urlHost}:${address.port}/`,
    version,
    node: process.version,
    config: redactedConfig(config),
    checks: monitor.checks.map(({ name, kind, target }) => ({ name, kind, target })),
    alerts: monitor.alerts.map((a) => a.shownAs),
  });

  let closed: Promise<void> | null = null;
  const shutdown = (): Promise<void> => {
    draining = true;
    stopWatching();
    closed ??= drain({ config, log, server, unread, hub, poller, state, alerter });
    return closed;
  };

  return {
    server,
    hub,
    poller,
    state,
    alerter,
    port: address.port,
    url: `http://${urlHost}:${address.port}`,
    reload,
    shutdown,
  };
}

interface Parts {
  readonly config: Config;
  readonly log: Logger;
  readonly server: http.Server;
  readonly unread: UnreadConnections;
  readonly hub: SseHub;
  readonly poller: StatusPoller;
  readonly state: ServiceState;
  readonly alerter: Alerter;
}

/**
 * Graceful shutdown: checks stop, every stream gets `done`, idle sockets close, waiting
 * alerts and the state save get what is left of the grace; then whatever remains is cut.
 */
function drain({ config, log, server, unread, hub, poller, state, alerter }: Parts): Promise<void> {
  return new Promise<void>((resolve) => {
    const deadline = performance.now() + config.shutdownGraceMs;
    log.info('shutting down', { streams: hub.size, graceMs: config.shutdownGraceMs });
    poller.stop();
    state.stopSaving();
    const grace = setTimeout(() => {
      log.warn('shutdown grace ran out: closing what is left', { streams: hub.size, alerts: alerter.waiting });
      hub.destroyAll();
      server.closeAllConnections();
      alerter.stop();
      resolve();
    }, config.shutdownGraceMs);
    // server.close() stops accepting, closes idle keep-alive sockets, and calls back once
    // every connection has closed; it does not close those that have sent nothing yet.
    const connectionsClosed = new Promise<void>((done) => server.close(() => done()));
    unread.closeAll();
    hub.closeAll();
    const alertsSent = alerter.drain(Math.max(0, deadline - performance.now()));
    void Promise.all([connectionsClosed, alertsSent, state.save()]).then(() => {
      clearTimeout(grace);
      resolve();
    });
  });
}

/** The hub of streams, with its open/close logging. */
function createHub(config: Config, log: Logger): SseHub {
  const hub: SseHub = new SseHub({
    retryMs: config.retryMs,
    heartbeatMs: config.heartbeatMs,
    replaySize: config.historySize,
    maxClients: config.maxClients,
    maxBufferedBytes: config.maxBufferedBytes,
    onOpen: log.isDebug
      ? (stream) => log.debug('stream opened', { remote: stream.res.socket?.remoteAddress, clients: hub.size })
      : undefined,
    onClose: (stream) => {
      if (stream.closeReason === 'slow') {
        const remote = stream.res.socket?.remoteAddress;
        log.warn('stream dropped: slow reader', { remote, maxBufferedBytes: config.maxBufferedBytes });
      } else log.debug('stream closed', { reason: stream.closeReason, clients: hub.size });
    },
  });
  return hub;
}

/** Resolves once listening; rejects with the listen error (a taken port). */
function listen(server: http.Server, config: Config): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: config.port, host: config.host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function readVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

/**
 * The command line: --help; --check-config validates and exits 0 or 2; config errors exit 2,
 * a taken port exits 1, SIGTERM/SIGINT drain and exit 0, SIGHUP reloads CONFIG_FILE.
 */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return;
  }
  const configError = (problems: readonly string[]): never => {
    process.stderr.write(`${problems.join('\n')}\n`);
    process.exit(2);
  };
  let config: Config;
  try {
    config = parseConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return configError(err.problems);
  }
  if (argv.includes('--check-config')) {
    const problems = checkConfig(config);
    if (problems.length > 0) return configError(problems);
    process.stdout.write('ok\n');
    return;
  }
  const log = createLogger(config.logLevel);
  keepMemoryReducerWorking();

  // Installed before listen(), so that no signal can find the process without them. As
  // PID 1 in a container a signal without a handler does nothing at all.
  let running: RunningServer | null = null;
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      log.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    signalled = true;
    log.info('signal received', { signal });
    if (running === null) process.exit(0); // nothing is served yet: nothing to drain
    void running.shutdown().then(() => {
      log.info('stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', () => running?.reload());
  // A rejection nobody handled is a bug to log, not a reason to stop watching the service.
  process.on('unhandledRejection', (reason) => {
    log.error('unhandled rejection', { err: reason instanceof Error ? reason : String(reason) });
  });

  try {
    running = await startServer(config, { log });
  } catch (err) {
    if (err instanceof ConfigError) return configError(err.problems);
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === 'EADDRINUSE'
        ? 'is already in use'
        : code === 'EACCES'
          ? 'needs privileges this process lacks'
          : `cannot be used (${String(code ?? err)})`;
    process.stderr.write(`status-stream: ${config.host}:${config.port} ${reason}\n`);
    process.exit(1);
  }
}

/** Every problem of CONFIG_FILE and STATE_DIR, as start-up would find them (like `nginx -t`). */
function checkConfig(config: Config): string[] {
  return [...loadMonitorConfig(config).problems, ...stateDirProblems(config)];
}

/** Whether STATE_DIR can be made and written (it is created if missing); nothing is read from it. */
function stateDirProblems(config: Config): string[] {
  if (config.stateDir === null) return [];
  try {
    StateStore.open(config.stateDir);
    return [];
  } catch (err) {
    return [`config: ${(err as Error).message}`];
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void main(process.argv.slice(2), process.env);
}
