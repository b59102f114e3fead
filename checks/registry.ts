// checks/registry.ts: the kinds of check, each from its own file: its URL scheme, the fields
// it takes, how its definition is built and how it runs. A new kind is a new file and one
// entry in each place here; the switches are exhaustive, so the compiler finds a missing one.

import { failure } from './attempt.ts';
import { DNS_FIELDS, dnsDefinition, runDns } from './dns.ts';
import type { Bad, Entry } from './fields.ts';
import { HTTP_FIELDS, HTTPS_FIELDS, httpDefinition, runHttp } from './http.ts';
import type { CheckCommon, CheckDefinition, CheckKind, Outcome, RunContext } from './index.ts';
import { PUSH_FIELDS, pushDefinition, pushOutcome } from './push.ts';
import { runTcp, TCP_FIELDS, tcpDefinition } from './tcp.ts';
import { portOf } from './url.ts';

/** Fields every kind takes. */
export const COMMON_FIELDS = ['name', 'url', 'intervalMs', 'critical', 'failuresToDown', 'successesToUp'] as const;

/** Each kind's URL scheme (as URL#protocol) and the fields it takes beyond COMMON_FIELDS. */
export const CHECK_KINDS: Readonly<Record<CheckKind, { readonly scheme: string; readonly fields: readonly string[] }>> =
  Object.freeze({
    http: { scheme: 'http:', fields: HTTP_FIELDS },
    https: { scheme: 'https:', fields: HTTPS_FIELDS },
    tcp: { scheme: 'tcp:', fields: TCP_FIELDS },
    dns: { scheme: 'dns:', fields: DNS_FIELDS },
    push: { scheme: 'push:', fields: PUSH_FIELDS },
  });

/** The kind whose scheme `protocol` is ('https:'), or null. */
export function kindOfScheme(protocol: string): CheckKind | null {
  for (const [kind, { scheme }] of Object.entries(CHECK_KINDS)) if (scheme === protocol) return kind as CheckKind;
  return null;
}

/** Builds a definition of `kind`; problems go to `bad`, and the result is then discarded by the caller. */
export function buildCheck(
  kind: CheckKind,
  parts: Omit<CheckCommon, 'kind' | 'target'>,
  url: URL,
  entry: Entry,
  bad: Bad,
): CheckDefinition {
  switch (kind) {
    case 'http':
    case 'https':
      return httpDefinition(parts, kind, url, entry, bad);
    case 'tcp':
      return tcpDefinition(parts, url, bad);
    case 'dns':
      return dnsDefinition(parts, url, entry, bad);
    case 'push':
      return pushDefinition(parts, url, entry, bad);
    default:
      return unknownKind(kind);
  }
}

/**
 * Runs one check, bounded by its timeoutMs. Never rejects: a failure, even a bug, is a
 * down outcome.
 */
export async function runCheck(def: CheckDefinition, context: RunContext): Promise<Outcome> {
  try {
    switch (def.kind) {
      case 'http':
      case 'https':
        return await runHttp(def);
      case 'tcp':
        return await runTcp(def);
      case 'dns':
        return await runDns(def);
      case 'push':
        return pushOutcome(def, context.pushes.last(def.name), context.startedAtMs, Date.now());
      default:
        return unknownKind(def);
    }
  } catch (err) {
    return { ...failure(err), latencyMs: 0 };
  }
}

/**
 * The name of a check given none: host:port (the query name for dns), or with the path (the
 * type for dns) when `long`, for when two would clash. null: this kind needs a name.
 */
export function defaultName(kind: CheckKind, url: URL, long: boolean): string | null {
  switch (kind) {
    case 'http':
    case 'https':
    case 'tcp': {
      const short = `${url.hostname}:${portOf(url)}`;
      // The path only, never the query: it may hold a secret.
      return long && url.pathname !== '/' ? `${short}${url.pathname}` : short;
    }
    case 'dns': {
      const type = (url.searchParams.get('type') ?? 'A').toUpperCase();
      return long ? `${url.hostname}/${type}` : url.hostname;
    }
    case 'push':
      return null;
    default:
      return unknownKind(kind);
  }
}

function unknownKind(value: never): never {
  throw new Error(`unknown check kind in ${JSON.stringify(value)}`);
}
