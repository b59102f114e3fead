// http/access.ts: who may use a route. Three scopes: public; read (AUTH_TOKEN, as a Bearer
// header, a ?token= for EventSource, which cannot set headers, or the page's cookie); write
// (PUBLISH_TOKEN, as a Bearer header only). Also the CORS headers. Pure: no I/O, no state.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export type Scope = 'public' | 'read' | 'write';

/** The cookie that carries the read token for the page (HttpOnly: scripts never see it). */
export const TOKEN_COOKIE = 'status_stream_token';

export interface Tokens {
  readonly authToken: string | null;
  readonly publishToken: string | null;
}

export interface AccessCheck {
  /** Whether a request with these headers and query may use a route of `scope`. */
  allows(scope: Scope, headers: IncomingHttpHeaders, query: URLSearchParams): boolean;
  /** Whether `given` is the read token (for trading a ?token= for the cookie). */
  isReadToken(given: string): boolean;
}

export function createAccess(tokens: Tokens): AccessCheck {
  const readDigest = tokens.authToken === null ? null : sha256(tokens.authToken);
  const writeDigest = tokens.publishToken === null ? null : sha256(tokens.publishToken);
  return {
    allows(scope, headers, query) {
      if (scope === 'public') return true;
      if (scope === 'write') {
        // The write API is off without PUBLISH_TOKEN; the router answers 404 before this.
        const given = bearerToken(headers.authorization);
        return writeDigest !== null && given !== null && matches(given, writeDigest);
      }
      if (readDigest === null) return true;
      const given =
        bearerToken(headers.authorization) ?? query.get('token') ?? cookieValue(headers.cookie, TOKEN_COOKIE);
      return given !== null && matches(given, readDigest);
    },
    isReadToken: (given) => readDigest !== null && matches(given, readDigest),
  };
}

/** The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive (RFC 9110 §11.1). */
export function bearerToken(header: string | undefined): string | null {
  const match = /^bearer +(\S+) *$/i.exec(header ?? '');
  return match?.[1] ?? null;
}

/** The value of cookie `name` in a Cookie header (RFC 6265 §5.4), or null. */
export function cookieValue(header: string | undefined, name: string): string | null {
  if (header === undefined) return null;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq !== -1 && pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim() || null;
  }
  return null;
}

// Digests have equal lengths whatever was given, so timingSafeEqual never throws and the
// time taken says nothing about the token.
function matches(given: string, digest: Buffer): boolean {
  return timingSafeEqual(sha256(given), digest);
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * CORS (Fetch Standard, "CORS protocol"): the origin is echoed only when it is listed, and
 * Vary: Origin tells caches that the answer depends on it. Returns null when CORS is off.
 */
export function corsHeaders(
  allowed: '*' | readonly string[],
  origin: string | undefined,
): Record<string, string> | null {
  if (allowed !== '*' && allowed.length === 0) return null;
  if (allowed === '*') return { Vary: 'Origin', 'Access-Control-Allow-Origin': '*' };
  if (origin !== undefined && allowed.includes(origin))
    return { Vary: 'Origin', 'Access-Control-Allow-Origin': origin };
  return { Vary: 'Origin' };
}
