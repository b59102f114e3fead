// checks/dns.ts: dns checks: one query through node:dns's Resolver (c-ares), a Resolver of
// its own per run so that its server and timeout are the check's. Never rejects.

import { Resolver } from 'node:dns';
import net from 'node:net';
import { bounded, elapsedMs, failure } from './attempt.ts';
import { type Finding, judge, latencyFinding } from './conditions.ts';
import { type Bad, type Entry, stringField } from './fields.ts';
import type { CheckCommon, DnsCheck, DnsType, Outcome } from './index.ts';

export const DNS_FIELDS = ['timeoutMs', 'degradedMs', 'expect.answer'] as const;
const DNS_TYPES: readonly DnsType[] = ['A', 'AAAA', 'CNAME', 'MX', 'TXT'];
const DNS_ACCEPTED = 'dns://name[?type=A|AAAA|CNAME|MX|TXT&server=ip[:port]]';
// A host name's labels (RFC 1123 §2.1), with '_' for service names like _dmarc (RFC 8552).
const NAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;

/** A dns definition from dns://name?type=…&server=… and expect.answer. */
export function dnsDefinition(
  common: Omit<CheckCommon, 'kind' | 'target'>,
  url: URL,
  entry: Entry,
  bad: Bad,
): DnsCheck {
  const query = url.hostname;
  let type: DnsType = 'A';
  let server: string | null = null;
  let ok =
    NAME.test(query) &&
    query.length <= 253 &&
    url.port === '' &&
    url.username === '' &&
    url.password === '' &&
    (url.pathname === '' || url.pathname === '/') &&
    url.hash === '';
  const seen = new Set<string>();
  for (const [key, value] of url.searchParams) {
    if (seen.has(key)) ok = false;
    seen.add(key);
    if (key === 'type') {
      const upper = value.toUpperCase();
      if ((DNS_TYPES as readonly string[]).includes(upper)) type = upper as DnsType;
      else ok = false;
    } else if (key === 'server') {
      server = dnsServer(value);
      if (server === null) ok = false;
    } else {
      ok = false;
    }
  }
  if (!ok) bad('url', url.href, DNS_ACCEPTED);
  const answer = stringField(entry, 'expect.answer', bad);
  if (answer !== null && ((type === 'A' && !net.isIPv4(answer)) || (type === 'AAAA' && !net.isIPv6(answer)))) {
    bad('expect.answer', answer, `an ${type === 'A' ? 'IPv4' : 'IPv6'} address (the check's type is ${type})`);
  }
  // The target is rebuilt from what was parsed: this query holds no secrets to hide.
  const target = `dns://${query}?type=${type}${server === null ? '' : `&server=${server}`}`;
  return Object.freeze({ ...common, kind: 'dns', target, query, type, server, answer });
}

// ip, ip:port, [ipv6] or [ipv6]:port, in the form Resolver#setServers takes (Node docs, dns.setServers).
function dnsServer(value: string): string | null {
  if (net.isIP(value) !== 0) return value;
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value) ?? /^\[([^\]]+)\]$/.exec(value);
  if (match === null) return null;
  const v6 = match[1];
  const v4 = match[2];
  const port = match[3] === undefined ? null : Number(match[3]);
  if (port !== null && (port < 1 || port > 65535)) return null;
  if (v6 !== undefined && net.isIPv6(v6)) return port === null ? v6 : `[${v6}]:${port}`;
  if (v4 !== undefined && net.isIPv4(v4)) return `${v4}:${port}`;
  return null;
}

export function runDns(def: DnsCheck): Promise<Outcome> {
  return bounded(
    def.timeoutMs,
    () => `no DNS answer within ${def.timeoutMs} ms`,
    (settle, startMs) => {
      // tries: 1 and the check's timeout: c-ares would otherwise retry 4 times, doubling its wait.
      const resolver = new Resolver({ timeout: def.timeoutMs, tries: 1 });
      if (def.server !== null) resolver.setServers([def.server]);
      const done = (err: Error | null, answers: readonly string[] | undefined): void => {
        if (err !== null) {
          settle(failure(err));
          return;
        }
        const list = answers ?? [];
        const detail = list.length === 1 ? '1 answer' : `${list.length} answers`;
        const finding: Finding | null =
          list.length === 0 ? { state: 'down', reason: `no ${def.type} answers` } : answerFinding(def, list);
        settle({ ...judge([finding, latencyFinding(elapsedMs(startMs), def.degradedMs)]), detail });
      };
      switch (def.type) {
        case 'A':
          resolver.resolve4(def.query, (err, addresses) => done(err, addresses));
          break;
        case 'AAAA':
          resolver.resolve6(def.query, (err, addresses) => done(err, addresses));
          break;
        case 'CNAME':
          resolver.resolveCname(def.query, (err, names) => done(err, names));
          break;
        case 'MX':
          resolver.resolveMx(def.query, (err, records) =>
            done(
              err,
              records?.map((r) => r.exchange),
            ),
          );
          break;
        case 'TXT':
          // A TXT record is a list of strings of at most 255 bytes each (RFC 1035 §3.3.14): joined, as one text.
          resolver.resolveTxt(def.query, (err, records) =>
            done(
              err,
              records?.map((chunks) => chunks.join('')),
            ),
          );
          break;
      }
      // cancel(): the pending query ends with ECANCELLED, after the outcome is settled.
      return { destroy: () => resolver.cancel() };
    },
  );
}

function answerFinding(def: DnsCheck, answers: readonly string[]): Finding | null {
  const expected = def.answer;
  if (expected === null) return null;
  const wanted = normalize(def.type, expected);
  if (answers.some((a) => normalize(def.type, a) === wanted)) return null;
  const shown = answers.slice(0, 3).join(', ') + (answers.length > 3 ? ', …' : '');
  return {
    state: 'down',
    reason: `${answers.length === 1 ? 'answer is' : 'answers are'} ${shown}, expected ${expected}`,
  };
}

// Names compare without case and trailing dot (RFC 4343); IPv6 by its canonical text (RFC 5952).
function normalize(type: DnsType, answer: string): string {
  switch (type) {
    case 'CNAME':
    case 'MX':
      return answer.toLowerCase().replace(/\.$/, '');
    case 'AAAA':
      return net.isIPv6(answer) ? new URL(`http://[${answer}]/`).hostname : answer;
    case 'A':
    case 'TXT':
      return answer;
  }
}
