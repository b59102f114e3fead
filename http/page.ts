// http/page.ts: the status page as served: its Content-Security-Policy (the one inline
// <style> and <script> allowed by hash), and the trade of a ?token= for a cookie.

import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { TOKEN_COOKIE } from './access.ts';

export interface Page {
  readonly html: string;
  readonly headers: Readonly<Record<string, string>>;
}

// CSP Level 3 "hash-source" allows exactly our inline blocks and nothing from elsewhere but
// this origin (the stream, history). Referrer-Policy keeps a ?token= out of any Referer.
export function preparePage(html: string): Page {
  const hashes = (tag: string): string =>
    [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))]
      .map((m) => `'sha256-${createHash('sha256').update(m[1]).digest('base64')}'`)
      .join(' ') || "'none'";
  const csp = [
    "default-src 'none'",
    `script-src ${hashes('script')}`,
    `style-src ${hashes('style')}`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return {
    html,
    headers: {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-cache',
      'Content-Security-Policy': csp,
      'Referrer-Policy': 'no-referrer',
    },
  };
}

/**
 * The Set-Cookie that carries a valid read token for the page's later requests, so that it
 * can leave the address bar. No Path attribute: the default path is the page's directory
 * (RFC 6265 §5.1.4), which is right also under a proxy's sub-path that this server never sees.
 * Secure when the client came over HTTPS, as a proxy tells with X-Forwarded-Proto.
 */
export function tokenCookie(token: string, req: IncomingMessage): string {
  const https = 'encrypted' in req.socket || /^https\b/i.test(String(req.headers['x-forwarded-proto'] ?? ''));
  return `${TOKEN_COOKIE}=${token}; HttpOnly; SameSite=Strict${https ? '; Secure' : ''}`;
}
