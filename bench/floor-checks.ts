// bench/floor-checks.ts: the full scenario's checks and alerts done by the least means, for
// floor-full (bench/floor-server.ts), so that the floor does the whole job the full service
// does and the ratio to it measures how we do it, not whether checks run at all. Each run is
// one raw TCP connection: a request written as fixed bytes, the status code read off the
// first line, the body (only for a body condition) searched or parsed as text. An alert is
// one raw POST. No node:http, no redirects, no TLS, no state machine: http:// targets only,
// as the bench's are.

import net from 'node:net';
import { type CheckDefaults, parseCheckDefinitions, type StatusRange } from '../checks/index.ts';
import { connectHost, portOf } from '../checks/url.ts';
import { ChunkedDecoder, parseResponseHead } from './sse-parser.ts';

export interface FloorCheck {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** The whole request, written once per run. */
  readonly request: Buffer;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly degradedMs: number | null;
  readonly statuses: readonly StatusRange[];
  readonly bodyContains: string | null;
  readonly json: { readonly path: readonly string[]; readonly equals: string } | null;
}

export interface FloorResult {
  readonly state: 'up' | 'degraded' | 'down';
  readonly latencyMs: number;
  readonly detail: string;
}

/**
 * The checks and the alert receivers of a CONFIG_FILE, its checks read by the service's own
 * parser with the service's `defaults`; a problem in it, or a check that is not http://, is refused.
 */
export function floorConfig(text: string, defaults: CheckDefaults): { checks: FloorCheck[]; receivers: URL[] } {
  const config = JSON.parse(text) as { checks?: unknown; alerts?: Array<{ url: string }> };
  const { checks, problems } = parseCheckDefinitions(config.checks, 'CONFIG_FILE', defaults, new Set());
  if (problems.length > 0) throw new Error(`floor-checks: ${problems.join('; ')}`);
  const floorChecks = checks.map((check): FloorCheck => {
    if (check.kind !== 'http') throw new Error(`floor-checks: only http:// checks, got ${check.target}`);
    const url = new URL(check.url);
    const { json } = check.expect;
    return {
      name: check.name,
      host: connectHost(url),
      port: portOf(url),
      request: Buffer.from(
        `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: status-stream\r\n` +
          'Accept: */*\r\nConnection: close\r\n\r\n',
        'latin1',
      ),
      intervalMs: check.intervalMs,
      timeoutMs: check.timeoutMs,
      degradedMs: check.degradedMs,
      statuses: check.expect.status,
      bodyContains: check.expect.bodyContains,
      json: json === null ? null : { path: json.path.split('.'), equals: JSON.stringify(json.equals) },
    };
  });
  return { checks: floorChecks, receivers: (config.alerts ?? []).map((alert) => new URL(alert.url)) };
}

/** The outcome of one response, `head` and `body` as received. */
export function judgeResponse(check: FloorCheck, head: string, body: string, latencyMs: number): FloorResult {
  const status = Number(head.slice(9, 12));
  const detail = `HTTP ${status}`;
  const down = (): FloorResult => ({ state: 'down', latencyMs, detail });
  if (!check.statuses.some((range) => status >= range.low && status <= range.high)) return down();
  if (check.bodyContains !== null && !body.includes(check.bodyContains)) return down();
  if (check.json !== null) {
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch {
      return down();
    }
    for (const key of check.json.path) value = (value as Record<string, unknown> | null)?.[key];
    if (JSON.stringify(value) !== check.json.equals) return down();
  }
  const slow = check.degradedMs !== null && latencyMs > check.degradedMs;
  return { state: slow ? 'degraded' : 'up', latencyMs, detail };
}

/** Runs `check` once; `done` gets its result, once. */
export function runFloorCheck(check: FloorCheck, done: (result: FloorResult) => void): void {
  const startMs = performance.now();
  const readsBody = check.bodyContains !== null || check.json !== null;
  const chunks: Buffer[] = [];
  let finished = false;
  const socket = net.connect(check.port, check.host);
  const finish = (result: FloorResult): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.destroy();
    done(result);
  };
  const fail = (detail: string): void => finish({ state: 'down', latencyMs: performance.now() - startMs, detail });
  const timer = setTimeout(() => fail('timeout'), check.timeoutMs);
  socket.once('connect', () => socket.write(check.request));
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    if (readsBody) return;
    const received = chunks.length === 1 ? chunk : Buffer.concat(chunks);
    const headEnd = received.indexOf('\r\n\r\n');
    // Without a body condition, the head is all it needs, as the service's check.
    if (headEnd !== -1) {
      finish(judgeResponse(check, received.toString('latin1', 0, headEnd), '', performance.now() - startMs));
    }
  });
  socket.once('end', () => {
    const received = Buffer.concat(chunks);
    const headEnd = received.indexOf('\r\n\r\n');
    if (headEnd === -1) fail('no answer');
    else {
      const head = received.toString('latin1', 0, headEnd);
      finish(judgeResponse(check, head, bodyText(head, received.subarray(headEnd + 4)), performance.now() - startMs));
    }
  });
  socket.once('error', (err: Error & { code?: string }) => fail(err.code ?? err.message));
}

/** A response's body as text, its chunked coding (the load generator's decoder) undone as far as it is whole. */
function bodyText(head: string, body: Buffer): string {
  let chunked: boolean;
  try {
    chunked = parseResponseHead(head).chunked;
  } catch {
    return '';
  }
  if (!chunked) return body.toString('utf8');
  const parts: Buffer[] = [];
  try {
    new ChunkedDecoder(
      (bytes) => parts.push(bytes),
      () => {},
    ).feed(body);
  } catch {
    // A broken coding: judged on what came whole.
  }
  return Buffer.concat(parts).toString('utf8');
}

/**
 * Runs every check every intervalMs, the i-th of n first at i/n of its interval, as the
 * service spreads them; `onResult` gets each result with the check's index.
 */
export function startFloorChecks(
  checks: readonly FloorCheck[],
  onResult: (index: number, result: FloorResult) => void,
): void {
  checks.forEach((check, i) => {
    const run = (): void => runFloorCheck(check, (result) => onResult(i, result));
    setTimeout(
      () => {
        run();
        setInterval(run, check.intervalMs);
      },
      Math.floor((check.intervalMs * i) / checks.length),
    );
  });
}

/** One alert: `body` POSTed as JSON to `url` on a connection of its own, the answer read and dropped. */
export function postAlert(url: URL, body: string): void {
  const bytes = Buffer.from(body);
  const socket = net.connect(portOf(url), connectHost(url));
  socket.once('connect', () =>
    socket.write(
      `POST ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${bytes.length}\r\nConnection: close\r\n\r\n${body}`,
    ),
  );
  socket.on('data', () => {});
  socket.once('end', () => socket.destroy());
  socket.once('error', () => socket.destroy());
  socket.setTimeout(10_000, () => socket.destroy());
}
