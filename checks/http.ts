// checks/http.ts: http and https checks: one GET over a fresh connection, redirects not
// followed, the body read only for a body condition (at most 1 MiB), the certificate judged
// from the TLS socket. Never sends a request before the certificate is accepted.

import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { bounded, elapsedMs, failure } from './attempt.ts';
import {
  bodyContainsFinding,
  DAY_MS,
  DEFAULT_STATUS,
  type Finding,
  humanDays,
  isJsonPath,
  jsonFinding,
  judge,
  latencyFinding,
  parseStatusRanges,
  statusFinding,
} from './conditions.ts';
import { type Bad, booleanField, type Entry, fieldValue, integerField, stringField } from './fields.ts';
import type { CheckCommon, HttpCheck, HttpExpect, Outcome } from './index.ts';
import { connectHost, portOf, redactUrl } from './url.ts';

const USER_AGENT = 'status-stream';
/** A body condition reads at most this much; a longer body fails the check. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** More interim (1xx) responses than this fail the check: a hostile target could send them forever. */
export const MAX_INFORMATIONAL = 10;
export const DEFAULT_CERT_MIN_DAYS = 14;
const MAX_CERT_MIN_DAYS = 3650;

export const HTTP_FIELDS = ['timeoutMs', 'degradedMs', 'expect.status', 'expect.bodyContains', 'expect.json'] as const;
export const HTTPS_FIELDS = [...HTTP_FIELDS, 'certMinDays', 'insecure'] as const;

type Parts = Omit<CheckCommon, 'kind' | 'target'>;

/** An http or https definition from its URL and its entry's options. */
export function httpDefinition(common: Parts, kind: 'http' | 'https', url: URL, entry: Entry, bad: Bad): HttpCheck {
  const statusValue = fieldValue(entry, 'expect.status');
  const status =
    statusValue === undefined
      ? DEFAULT_STATUS
      : (parseStatusRanges(statusValue, (given, accepted) => bad('expect.status', given, accepted)) ?? DEFAULT_STATUS);
  const expect: HttpExpect = Object.freeze({
    status: Object.freeze(status),
    bodyContains: stringField(entry, 'expect.bodyContains', bad),
    json: jsonExpect(entry, bad),
  });
  return Object.freeze({
    ...common,
    kind,
    target: redactUrl(url),
    url: url.href,
    expect,
    certMinDays: integerField(entry, 'certMinDays', DEFAULT_CERT_MIN_DAYS, 0, MAX_CERT_MIN_DAYS, bad),
    insecure: booleanField(entry, 'insecure', false, bad),
  });
}

function jsonExpect(entry: Entry, bad: Bad): HttpExpect['json'] {
  const value = fieldValue(entry, 'expect.json');
  if (value === undefined) return null;
  const accepted = '{"path": "a.b.0.c", "equals": <a JSON value>}';
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    bad('expect.json', value, accepted);
    return null;
  }
  const record = value as Record<string, unknown>;
  let ok = true;
  for (const key of Object.keys(record)) {
    if (key !== 'path' && key !== 'equals') {
      bad(`expect.json.${key}`, record[key], 'a field of expect.json (path, equals)');
      ok = false;
    }
  }
  if (!isJsonPath(record.path)) {
    bad('expect.json.path', record.path, 'object keys and array indexes joined by dots, like "a.b.0.c"');
    ok = false;
  }
  if (!Object.hasOwn(record, 'equals')) {
    bad('expect.json.equals', undefined, 'a JSON value, compared by strict JSON equality');
    ok = false;
  }
  return ok ? Object.freeze({ path: record.path as string, equals: record.equals }) : null;
}

/** One GET; see docs/checks.md for the state rules. Never rejects. */
export function runHttp(def: HttpCheck): Promise<Outcome> {
  const url = new URL(def.url);
  const readsBody = def.expect.bodyContains !== null || def.expect.json !== null;
  const auth = credentials(url);
  let waitingFor = 'connection';
  let certExpiresAt: string | undefined;
  let certIssue: Finding | null = null;

  const outcome = bounded(
    def.timeoutMs,
    () => `no ${waitingFor} within ${def.timeoutMs} ms`,
    (settle, startMs) => {
      const host = connectHost(url);
      const port = portOf(url);
      let req: http.ClientRequest | null = null;
      const finish = (detail: string, findings: ReadonlyArray<Finding | null>): void => {
        settle({ ...judge([...findings, certIssue, latencyFinding(elapsedMs(startMs), def.degradedMs)]), detail });
      };

      const send = (socket: net.Socket): void => {
        waitingFor = 'answer';
        // No agent: Node then sends Connection: close and uses this socket only (Node docs,
        // http.request, createConnection), so each run measures a fresh connection.
        req = http.request({
          method: 'GET',
          path: `${url.pathname}${url.search}`,
          headers: { host: url.host, 'user-agent': USER_AGENT, accept: '*/*' },
          auth,
          createConnection: () => socket,
        });
        let informational = 0;
        req.on('information', (info: http.InformationEvent) => {
          if (++informational > MAX_INFORMATIONAL) {
            settle({
              state: 'down',
              detail: `HTTP ${info.statusCode}`,
              reason: `more than ${MAX_INFORMATIONAL} informational (1xx) responses`,
            });
          }
        });
        req.on('response', (res: http.IncomingMessage) => {
          const detail = `HTTP ${res.statusCode ?? 0}`;
          res.on('error', (err) => settle(failure(err)));
          const wrongStatus = statusFinding(res.statusCode ?? 0, def.expect.status);
          if (!readsBody || wrongStatus !== null) {
            finish(detail, [wrongStatus]);
            return;
          }
          const tooLarge = {
            state: 'down',
            detail,
            reason: `body larger than ${MAX_BODY_BYTES / 1024 / 1024} MiB`,
          } as const;
          if (Number(res.headers['content-length']) > MAX_BODY_BYTES) {
            settle(tooLarge);
            return;
          }
          waitingFor = 'complete body';
          const chunks: Buffer[] = [];
          let bytes = 0;
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            if (bytes > MAX_BODY_BYTES) settle(tooLarge);
            else chunks.push(chunk);
          });
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            const { bodyContains, json } = def.expect;
            finish(detail, [
              bodyContains === null ? null : bodyContainsFinding(body, bodyContains),
              json === null ? null : jsonFinding(body, json),
            ]);
          });
          res.on('close', () => settle({ state: 'down', detail, reason: 'body cut short' }));
        });
        req.on('error', (err) => settle(failure(err)));
        req.end();
      };

      let socket: net.Socket;
      switch (def.kind) {
        case 'http':
          socket = net.connect({ host, port });
          socket.once('connect', () => send(socket));
          break;
        case 'https': {
          // Verification is done here rather than by rejectUnauthorized, so that the certificate
          // is reported (and its expiry judged) even when it is not trusted. servername (SNI)
          // must not be an IP address (RFC 6066 §3).
          const secure = tls.connect({
            host,
            port,
            servername: net.isIP(host) === 0 ? host : undefined,
            rejectUnauthorized: false,
            ALPNProtocols: ['http/1.1'],
          });
          socket = secure;
          secure.once('connect', () => (waitingFor = 'TLS handshake'));
          secure.once('secureConnect', () => {
            const judged = judgeCertificate(secure, def);
            certExpiresAt = judged.expiresAt;
            certIssue = judged.issue;
            if (judged.refused !== null) settle(judged.refused);
            else send(secure);
          });
          break;
        }
      }
      socket.on('error', (err) => settle(failure(err)));
      return {
        destroy: () => {
          req?.destroy();
          socket.destroy();
        },
      };
    },
  );
  return outcome.then((o) => (certExpiresAt === undefined ? o : { ...o, certExpiresAt }));
}

/**
 * The certificate's expiry (expired: down; within certMinDays: degraded), and whether the
 * request may go out: not when the chain or hostname failed verification, unless insecure.
 */
function judgeCertificate(
  socket: tls.TLSSocket,
  def: HttpCheck,
): {
  expiresAt: string | undefined;
  issue: Finding | null;
  refused: Omit<Outcome, 'latencyMs'> | null;
} {
  const cert = socket.getPeerCertificate();
  const expiresMs = Date.parse(cert.valid_to ?? '');
  let issue: Finding | null = null;
  let expiresAt: string | undefined;
  if (Number.isNaN(expiresMs)) {
    issue = { state: 'down', reason: 'certificate without an expiry date' };
  } else {
    expiresAt = new Date(expiresMs).toISOString();
    const leftMs = expiresMs - Date.now();
    if (leftMs <= 0) issue = { state: 'down', reason: `certificate expired ${humanDays(-leftMs)} ago` };
    else if (leftMs < def.certMinDays * DAY_MS)
      issue = { state: 'degraded', reason: `certificate expires in ${humanDays(leftMs)}` };
  }
  let refused: Omit<Outcome, 'latencyMs'> | null = null;
  if (!def.insecure && !socket.authorized) {
    // authorizationError is an OpenSSL or Node code, e.g. DEPTH_ZERO_SELF_SIGNED_CERT,
    // ERR_TLS_CERT_ALTNAME_INVALID (Node docs, tls.TLSSocket.authorizationError).
    const code = String(socket.authorizationError);
    refused = {
      state: 'down',
      detail: code,
      reason: issue?.state === 'down' ? issue.reason : `certificate not valid: ${code}`,
    };
  }
  return { expiresAt, issue, refused };
}

// Basic credentials from the URL, as http.request(url) would send them (WHATWG URL keeps
// them percent-encoded).
function credentials(url: URL): string | undefined {
  if (url.username === '' && url.password === '') return undefined;
  return `${decode(url.username)}:${decode(url.password)}`;
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
