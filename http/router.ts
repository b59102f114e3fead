// http/router.ts: finds the route for a request and applies what every route shares:
// 404, OPTIONS and CORS, the route's own methods (405 with its Allow), its access scope
// (401), and one place where an unexpected error becomes a 500. It knows no route's work.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { type AccessCheck, corsHeaders, type Scope } from './access.ts';
import { sendError } from './reply.ts';

export interface RequestContext {
  readonly query: URLSearchParams;
  /** For a prefix route, the rest of the path after the prefix ("web.svg" of "/badge/web.svg"). */
  readonly rest: string;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, context: RequestContext) => void | Promise<void>;

export interface Route {
  /** GET implies HEAD (RFC 9110 §9.3.2). OPTIONS is answered for every route. */
  readonly methods: readonly ('GET' | 'POST' | 'PUT' | 'DELETE')[];
  readonly scope: Scope;
  readonly handler: Handler;
}

export interface RouterOptions {
  /** Exact paths ("/status") and prefixes ending in "/" ("/badge/"), matched longest first. */
  readonly routes: Readonly<Record<string, Route>>;
  readonly access: AccessCheck;
  readonly corsOrigins: '*' | readonly string[];
  /** An unexpected error in one request: the router logs nothing itself. */
  readonly onError: (path: string, err: unknown) => void;
}

// Request headers a cross-origin client may send: Last-Event-ID for EventSource reconnects,
// Authorization and Content-Type for fetch-based readers and writers.
const ALLOWED_HEADERS = 'Authorization, Content-Type, Last-Event-ID, Cache-Control';

/** Returns the request listener. */
export function createRouter(options: RouterOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { routes, access } = options;
  const prefixes = Object.keys(routes)
    .filter((p) => p.endsWith('/') && p !== '/')
    .sort((a, b) => b.length - a.length);

  const find = (path: string): { route: Route; rest: string } | null => {
    if (Object.hasOwn(routes, path)) return { route: routes[path], rest: '' };
    for (const prefix of prefixes) {
      if (path.startsWith(prefix) && path.length > prefix.length)
        return { route: routes[prefix], rest: path.slice(prefix.length) };
    }
    return null;
  };

  const dispatch = (req: IncomingMessage, res: ServerResponse, url: string): void => {
    const q = url.indexOf('?');
    // By hand, not new URL(): "//host/x" must stay a path, and junk must not throw.
    const path = q === -1 ? url : url.slice(0, q);
    const found = find(path);
    if (found === null) return sendError(res, 404, 'not found');
    const { route, rest } = found;
    const cors = corsHeaders(options.corsOrigins, req.headers.origin);
    if (cors !== null) for (const [name, value] of Object.entries(cors)) res.setHeader(name, value);
    const allow = allowHeader(route);
    if (req.method === 'OPTIONS') {
      const headers: Record<string, string> = { Allow: allow };
      if (cors !== null) {
        headers['Access-Control-Allow-Methods'] = allow;
        headers['Access-Control-Allow-Headers'] = ALLOWED_HEADERS;
        headers['Access-Control-Max-Age'] = '600';
      }
      res.writeHead(204, headers).end();
      return;
    }
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    if (!route.methods.some((m) => m === method)) return sendError(res, 405, 'method not allowed', { Allow: allow });
    const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
    if (!access.allows(route.scope, req.headers, query)) {
      return sendError(res, 401, 'unauthorized', { 'WWW-Authenticate': 'Bearer realm="status-stream"' });
    }
    const result = route.handler(req, res, { query, rest });
    if (result instanceof Promise) result.catch((err: unknown) => failed(res, path, err));
  };

  // Logged, answered 500 if nothing was sent yet, else the connection is cut. The body never
  // carries the error or a stack.
  const failed = (res: ServerResponse, path: string, err: unknown): void => {
    options.onError(path, err);
    if (!res.headersSent) sendError(res, 500, 'internal error');
    else res.destroy();
  };

  return (req, res) => {
    const url = req.url ?? '/';
    try {
      dispatch(req, res, url);
    } catch (err) {
      failed(res, url.split('?')[0], err);
    }
  };
}

function allowHeader(route: Route): string {
  const methods: string[] = [];
  for (const m of route.methods) methods.push(m, ...(m === 'GET' ? ['HEAD'] : []));
  return [...methods, 'OPTIONS'].join(', ');
}
