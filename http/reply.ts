// http/reply.ts: how every non-stream answer is written: a whole body with its length,
// nosniff, and small JSON error objects that never echo input or a stack.

import type { ServerResponse } from 'node:http';

export type Headers = Record<string, string>;

export function send(res: ServerResponse, status: number, body: string | Buffer, headers: Headers): void {
  res.writeHead(status, { 'Content-Length': Buffer.byteLength(body), 'X-Content-Type-Options': 'nosniff', ...headers });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, body: string, headers: Headers = {}): void {
  send(res, status, body, {
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    ...headers,
  });
}

/** `{"error": message}`: the message is ours, never the client's input. */
export function sendError(res: ServerResponse, status: number, message: string, headers: Headers = {}): void {
  sendJson(res, status, JSON.stringify({ error: message }), headers);
}
