// http/body.ts: reads the JSON body of a write: application/json only (415), at most
// MAX_BODY_BYTES (413), parsed whole or refused (400). The 30 s deadline for a body is the
// server's requestTimeout (http/connections.ts).

import type { IncomingMessage } from 'node:http';

export const MAX_BODY_BYTES = 64 * 1024;

/** A body refused, with the status to answer and a one-line reason that never quotes the input. */
export class BodyError extends Error {
  readonly status: 400 | 413 | 415;
  constructor(status: 400 | 413 | 415, message: string) {
    super(message);
    this.name = 'BodyError';
    this.status = status;
  }
}

/**
 * The parsed body; undefined when the request has none and `optional` (a push without
 * details). Rejects with a BodyError.
 */
export async function readJsonBody(req: IncomingMessage, optional = false): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if (optional && !chunked && (Number.isNaN(declared) || declared === 0)) return undefined;
  // RFC 9110 §8.3.1: the media type is case-insensitive; parameters (charset) may follow.
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  const notJson = new BodyError(415, 'the body must be JSON (Content-Type: application/json)');
  // An optional body with no type at all may still turn out empty (chunked, no length).
  const untyped = optional && req.headers['content-type'] === undefined;
  if (type !== 'application/json' && !untyped) throw notJson;
  if (declared > MAX_BODY_BYTES) throw new BodyError(413, `the body must be at most ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new BodyError(413, `the body must be at most ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  if (size === 0 && optional) return undefined;
  if (untyped) throw notJson;
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)));
  } catch {
    throw new BodyError(400, 'the body is not valid JSON');
  }
}

/** The body as an object with only `allowed` fields; throws a 400 BodyError naming what is wrong. */
export function jsonObject(value: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new BodyError(400, `the body must be a JSON object with ${allowed.join(', ')}`);
  }
  for (const key of Object.keys(value)) {
    // The field is not named: an error never quotes the client's input (http/reply.ts).
    if (!allowed.includes(key)) throw new BodyError(400, `unknown field; accepted: ${allowed.join(', ')}`);
  }
  return value as Record<string, unknown>;
}
