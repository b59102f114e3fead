// http/routes.ts: the route table: each path with its methods, its access scope and the
// handler that answers it from the parts it is given. It owns no state of its own.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Alerter } from '../alerts.ts';
import { badgeSvg, formatUptime, shieldsEndpoint, stateColor, uptimeColor } from '../badge.ts';
import type { Config } from '../config.ts';
import { parseHistoryQuery } from '../history.ts';
import { METRICS_CONTENT_TYPE, renderMetrics } from '../metrics.ts';
import type { EventFilter } from '../replay.ts';
import { parseEventFilter, SSE_HEADERS, SseError, type SseHub, SseStream } from '../sse.ts';
import type { ServiceState } from '../state.ts';
import type { StatusPoller } from '../status.ts';
import type { AccessCheck } from './access.ts';
import { type ConnectionStats, releaseParser } from './connections.ts';
import { type Page, tokenCookie } from './page.ts';
import { type Headers, send, sendError, sendJson } from './reply.ts';
import type { RequestContext, Route } from './router.ts';
import { createWriteRoutes, createWriteStats, decodeName } from './write-api.ts';

export interface RouteParts {
  readonly config: Config;
  readonly hub: SseHub;
  readonly poller: StatusPoller;
  readonly page: Page;
  readonly access: AccessCheck;
  readonly connections: ConnectionStats;
  readonly state: ServiceState;
  readonly alerter: Alerter;
  readonly reloads: { readonly ok: number; readonly error: number };
  readonly draining: () => boolean;
}

const UPTIME_RANGES = new Set(['24h', '7d', '30d']);

export function createRoutes(parts: RouteParts): Record<string, Route> {
  const { config, hub, poller, page, access } = parts;
  const retryAfter: Headers = { 'Retry-After': String(Math.max(1, Math.ceil(config.retryMs / 1000))) };
  const unavailable = (res: ServerResponse, error: string): void => sendError(res, 503, error, retryAfter);

  function servePage(req: IncomingMessage, res: ServerResponse, { query }: RequestContext): void {
    const token = query.get('token');
    // A valid ?token= becomes a cookie, so the page can drop it from the address bar.
    const headers =
      token !== null && access.isReadToken(token)
        ? { ...page.headers, 'Set-Cookie': tokenCookie(token, req) }
        : page.headers;
    send(res, 200, page.html, headers);
  }

  function openStream(req: IncomingMessage, res: ServerResponse, { query }: RequestContext): void {
    if (parts.draining()) return unavailable(res, 'shutting down');
    let events: EventFilter;
    try {
      events = parseEventFilter(query.get('events'));
    } catch (err) {
      if (err instanceof SseError) return sendError(res, 400, err.message);
      throw err;
    }
    if (req.method === 'HEAD') {
      res.writeHead(200, SSE_HEADERS).end();
      return;
    }
    // The header is what EventSource sends when it reconnects; the query parameter is for a
    // first connection that resumes (EventSource cannot set headers). On a reconnect the URL
    // still holds the first id, so the header, which is newer, wins.
    const lastEventId = firstHeader(req.headers['last-event-id']) ?? query.get('lastEventId');
    const open = (): void => {
      const opened = hub.open(res, { lastEventId, events });
      if (opened instanceof SseStream) releaseParser(req.socket);
      else if (opened === 'full') unavailable(res, 'too many streams');
      // Pipelined behind another response: it opens when that one is done and Node hands
      // this one the socket. Behind a stream, that never happens: it holds no slot and
      // nothing is written (docs/operations.md, one stream per connection).
      else if (opened === 'queued' && res.socket === null)
        res.once('socket', () => (parts.draining() ? unavailable(res, 'shutting down') : open()));
    };
    open();
  }

  async function sendStatus(_req: IncomingMessage, res: ServerResponse): Promise<void> {
    sendJson(res, 200, (await poller.snapshot()).json);
  }

  function sendReadiness(_req: IncomingMessage, res: ServerResponse): void {
    if (parts.draining()) return unavailable(res, 'shutting down');
    if (hub.full) return unavailable(res, 'too many streams');
    sendJson(res, 200, '{"ready":true}');
  }

  function sendMetrics(_req: IncomingMessage, res: ServerResponse): void {
    const body = renderMetrics({
      clients: hub.size,
      hub: hub.stats,
      rounds: poller.rounds,
      checks: poller.checkStats,
      connections: parts.connections,
      lastSnapshotMs: poller.latest === null ? null : Date.parse(poller.latest.snapshot.time),
      snapshotBuildMs: poller.lastBuildMs,
      alerts: parts.alerter.stats,
      reloads: parts.reloads,
      writes,
    });
    send(res, 200, body, { 'Content-Type': METRICS_CONTENT_TYPE, 'Cache-Control': 'no-store' });
  }

  // The body is written a check at a time, yielding between pieces: 100 checks over 90 days
  // take ~120 ms to serialize at once, ~0.7 ms a piece (docs/history.md).
  async function sendHistory(_req: IncomingMessage, res: ServerResponse, { query }: RequestContext): Promise<void> {
    const parsed = parseHistoryQuery(
      query,
      poller.definitions.map((d) => d.name),
    );
    if (!parsed.ok) return sendError(res, parsed.status, parsed.error);
    res.writeHead(200, {
      'Content-Type': 'application/json; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
    });
    for (const piece of parts.state.history.queryJson(parsed.query, Date.now())) {
      if (res.destroyed) return;
      const flushed = res.write(piece);
      await new Promise<void>((resolve) => {
        if (flushed) setImmediate(resolve);
        else {
          res.once('drain', resolve);
          res.once('close', resolve);
        }
      });
    }
    res.end();
  }

  // /badge.svg (overall) and /badge/<check>.svg|.json; ?uptime=24h|7d|30d, ?label=.
  async function sendBadge(_req: IncomingMessage, res: ServerResponse, { query, rest }: RequestContext): Promise<void> {
    const format = rest === '' || rest.endsWith('.svg') ? 'svg' : rest.endsWith('.json') ? 'json' : null;
    const name = rest === '' ? null : decodeName(rest.slice(0, rest.lastIndexOf('.')));
    if (format === null || (rest !== '' && name === null)) return sendError(res, 404, 'not found');
    const uptime = query.get('uptime');
    if (uptime !== null && (!UPTIME_RANGES.has(uptime) || name === null)) {
      return sendError(res, 400, 'uptime must be 24h, 7d or 30d, on a check badge');
    }
    const { snapshot } = await poller.snapshot();
    const check = name === null ? undefined : snapshot.checks.find((c) => c.name === name);
    if (name !== null && check === undefined) return sendError(res, 404, 'no check of that name');
    let label = query.get('label') ?? check?.name ?? config.title;
    let message: string;
    let color: string;
    if (check === undefined) {
      message = snapshot.status;
      color = stateColor(snapshot.status);
    } else if (uptime !== null) {
      const percent = check.uptime[uptime as keyof typeof check.uptime];
      message = formatUptime(percent);
      color = uptimeColor(percent);
      if (query.get('label') === null) label = `${label} ${uptime}`;
    } else {
      message = check.state;
      color = stateColor(check.state);
    }
    const headers = { 'Cache-Control': 'no-cache' };
    if (format === 'json')
      send(res, 200, shieldsEndpoint(label, message, color), {
        ...headers,
        'Content-Type': 'application/json; charset=utf-8',
      });
    else
      send(res, 200, badgeSvg(label, message, color), { ...headers, 'Content-Type': 'image/svg+xml; charset=utf-8' });
  }

  const writes = createWriteStats();
  // Off without PUBLISH_TOKEN: its routes do not exist (404), rather than refuse (401).
  const writeRoutes =
    config.publishToken === null ? {} : createWriteRoutes({ hub, poller, state: parts.state, stats: writes });

  return {
    ...writeRoutes,
    '/history': { methods: ['GET'], scope: 'read', handler: sendHistory },
    '/badge.svg': { methods: ['GET'], scope: 'read', handler: sendBadge },
    '/badge/': { methods: ['GET'], scope: 'read', handler: sendBadge },
    '/': { methods: ['GET'], scope: 'public', handler: servePage },
    '/events': { methods: ['GET'], scope: 'read', handler: openStream },
    '/status': { methods: ['GET'], scope: 'read', handler: sendStatus },
    '/healthz': { methods: ['GET'], scope: 'public', handler: (_req, res) => sendJson(res, 200, '{"ok":true}') },
    '/readyz': { methods: ['GET'], scope: 'public', handler: sendReadiness },
    '/metrics': { methods: ['GET'], scope: 'read', handler: sendMetrics },
  };
}

function firstHeader(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) || null;
}
