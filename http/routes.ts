// http/routes.ts: the route table: each path with its methods, its access scope and the
// handler that answers it from the parts it is given. It owns no state of its own.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config.ts';
import { METRICS_CONTENT_TYPE, renderMetrics } from '../metrics.ts';
import type { EventFilter } from '../replay.ts';
import { SSE_HEADERS, SseError, type SseHub, parseEventFilter } from '../sse.ts';
import type { StatusPoller } from '../status.ts';
import type { AccessCheck } from './access.ts';
import type { ConnectionStats } from './connections.ts';
import { type Page, tokenCookie } from './page.ts';
import { type Headers, send, sendError, sendJson } from './reply.ts';
import type { RequestContext, Route } from './router.ts';

export interface RouteParts {
  readonly config: Config;
  readonly hub: SseHub;
  readonly poller: StatusPoller;
  readonly page: Page;
  readonly access: AccessCheck;
  readonly connections: ConnectionStats;
  readonly draining: () => boolean;
}

export function createRoutes(parts: RouteParts): Record<string, Route> {
  const { config, hub, poller, page, access } = parts;
  const retryAfter: Headers = { 'Retry-After': String(Math.max(1, Math.ceil(config.retryMs / 1000))) };
  const unavailable = (res: ServerResponse, error: string): void => sendError(res, 503, error, retryAfter);

  function servePage(req: IncomingMessage, res: ServerResponse, { query }: RequestContext): void {
    const token = query.get('token');
    // A valid ?token= becomes a cookie, so the page can drop it from the address bar.
    const headers = token !== null && access.isReadToken(token) ? { ...page.headers, 'Set-Cookie': tokenCookie(token, req) } : page.headers;
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
    // 'queued': pipelined behind another response on its connection; it can never be
    // answered, so it is not (docs/operations.md, one stream per connection).
    if (hub.open(res, { lastEventId, events }) === 'full') unavailable(res, 'too many streams');
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
      clients: hub.size, hub: hub.stats, rounds: poller.rounds, checks: poller.checkStats, connections: parts.connections,
      lastSnapshotMs: poller.latest === null ? null : Date.parse(poller.latest.snapshot.time),
    });
    send(res, 200, body, { 'Content-Type': METRICS_CONTENT_TYPE, 'Cache-Control': 'no-store' });
  }

  return {
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
