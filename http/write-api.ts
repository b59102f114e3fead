// http/write-api.ts: the routes that change what the service says, on with PUBLISH_TOKEN:
// a push for a push check, an app's own event to every stream, the announcement. Each body
// is checked whole before anything changes, so a refused write changes nothing.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_PUSH_MSG_CHARS } from '../checks/push.ts';
import { EVENT_NAME, type SseHub } from '../sse.ts';
import type { ServiceState } from '../state.ts';
import type { Announcement, StatusPoller } from '../status.ts';
import { BodyError, jsonObject, MAX_BODY_BYTES, readJsonBody } from './body.ts';
import { sendError, sendJson } from './reply.ts';
import type { Handler, RequestContext, Route } from './router.ts';

/** Names an app event may not take: snapshots, transitions and the hub's own events. */
export const RESERVED_EVENTS: ReadonlySet<string> = new Set(['message', 'change', 'done', 'reset']);
export const MAX_ANNOUNCEMENT_CHARS = 500;
const LEVELS = ['info', 'warning', 'critical'] as const;

export interface WriteStats {
  publish: { accepted: number; refused: number };
  /** Pushes recorded, by check. */
  push: Map<string, number>;
}

export interface WriteParts {
  readonly hub: SseHub;
  readonly poller: StatusPoller;
  readonly state: ServiceState;
  readonly stats: WriteStats;
}

export function createWriteStats(): WriteStats {
  return { publish: { accepted: 0, refused: 0 }, push: new Map() };
}

/** The write routes: '/push/' (a prefix), '/publish', '/announcement'. */
export function createWriteRoutes(parts: WriteParts): Record<string, Route> {
  const { hub, poller, state, stats } = parts;

  async function push(req: IncomingMessage, res: ServerResponse, { rest }: RequestContext): Promise<void> {
    const name = decodeName(rest);
    const def = name === null ? undefined : poller.definitions.find((d) => d.name === name);
    if (name === null || def === undefined || def.kind !== 'push')
      return sendError(res, 404, 'no push check of that name');
    const body = await readJsonBody(req, true);
    let status: 'up' | 'down' = 'up';
    let msg: string | null = null;
    if (body !== undefined) {
      const fields = jsonObject(body, ['status', 'msg']);
      if (fields.status !== undefined) {
        if (fields.status !== 'up' && fields.status !== 'down')
          throw new BodyError(400, 'status must be "up" or "down"');
        status = fields.status;
      }
      if (fields.msg !== undefined && fields.msg !== null) {
        if (typeof fields.msg !== 'string' || fields.msg.length > MAX_PUSH_MSG_CHARS) {
          throw new BodyError(400, `msg must be a string of at most ${MAX_PUSH_MSG_CHARS} characters`);
        }
        // A blank msg (a script's empty variable) is no msg: a down check never shows an empty reason.
        msg = fields.msg.trim() === '' ? null : fields.msg;
      }
    }
    state.pushes.record(name, { status, msg }, Date.now());
    stats.push.set(name, (stats.push.get(name) ?? 0) + 1);
    await poller.runNow(name);
    res.writeHead(204).end();
  }

  async function publish(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let fields: Record<string, unknown>;
    let data: string;
    try {
      fields = jsonObject(await readJsonBody(req), ['event', 'data']);
      if (typeof fields.event !== 'string' || !EVENT_NAME.test(fields.event) || RESERVED_EVENTS.has(fields.event)) {
        throw new BodyError(400, `event must match ${EVENT_NAME.source} and not be message, change, done or reset`);
      }
      if (fields.data === undefined) throw new BodyError(400, 'data is required (any JSON value)');
      data = JSON.stringify(fields.data);
      // Serializing can lengthen the body ("1e20" becomes 21 digits): the event, which every
      // stream and the replay history hold, keeps the body's bound (docs/write-api.md).
      if (Buffer.byteLength(data) > MAX_BODY_BYTES) {
        throw new BodyError(413, `data must be at most ${MAX_BODY_BYTES} bytes as one line of JSON`);
      }
    } catch (err) {
      stats.publish.refused++;
      throw err;
    }
    const id = hub.publishEvent(fields.event, data);
    stats.publish.accepted++;
    sendJson(res, 202, JSON.stringify({ id }));
  }

  async function announce(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'DELETE') {
      state.announcement = null;
      poller.publishNow();
      res.writeHead(204).end();
      return;
    }
    const fields = jsonObject(await readJsonBody(req), ['text', 'level', 'maintenance']);
    const { text, level = 'info', maintenance = false } = fields;
    if (typeof text !== 'string' || text.trim() === '' || text.length > MAX_ANNOUNCEMENT_CHARS) {
      throw new BodyError(400, `text must be a non-empty string of at most ${MAX_ANNOUNCEMENT_CHARS} characters`);
    }
    if (!LEVELS.some((l) => l === level)) throw new BodyError(400, 'level must be info, warning or critical');
    if (typeof maintenance !== 'boolean') throw new BodyError(400, 'maintenance must be true or false');
    const announcement: Announcement = {
      text,
      level: level as Announcement['level'],
      maintenance,
      time: new Date().toISOString(),
    };
    state.announcement = announcement;
    // Sent at once, not at the next interval: a maintenance note matters now.
    poller.publishNow();
    sendJson(res, 200, JSON.stringify(announcement));
  }

  return {
    '/push/': { methods: ['POST'], scope: 'write', handler: refusing(push) },
    '/publish': { methods: ['POST'], scope: 'write', handler: refusing(publish) },
    '/announcement': { methods: ['PUT', 'DELETE'], scope: 'write', handler: refusing(announce) },
  };
}

// A refused body is answered with its status and reason; the connection closes, since the
// rest of a body that was not read would be taken for the next request.
function refusing(handler: Handler): Handler {
  return async (req, res, context) => {
    try {
      await handler(req, res, context);
    } catch (err) {
      if (!(err instanceof BodyError)) throw err;
      sendError(res, err.status, err.message, { Connection: 'close' });
    }
  };
}

/** A check name from a path segment, percent-decoded; null when it cannot be one. */
export function decodeName(segment: string): string | null {
  try {
    const name = decodeURIComponent(segment);
    return name === '' ? null : name;
  } catch {
    return null;
  }
}
