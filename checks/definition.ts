// checks/definition.ts: check definitions from the CHECKS variable and from CONFIG_FILE's
// "checks" array. Every problem is collected, each naming where it is, the value given and
// what is accepted (docs/checks.md). Never throws on bad input, never shows credentials.

import { type Bad, booleanField, type Entry, integerField, MAX_TIMER_MS, show } from './fields.ts';
import type { CheckCommon, CheckDefaults, CheckDefinition, CheckKind } from './index.ts';
import { buildCheck, CHECK_KINDS, COMMON_FIELDS, defaultName, kindOfScheme } from './registry.ts';
import { redactUnparsedUrl, redactUrl } from './url.ts';

export interface ParsedChecks {
  checks: CheckDefinition[];
  problems: string[];
}

// The same lower bound as STATUS_INTERVAL_MS.
const MIN_INTERVAL_MS = 100;
const MAX_RUNS_TO_CHANGE = 1000;
const NAME_ACCEPTED = 'a non-empty name without control characters or commas';
// Names become metric label values, table rows and CHECKS entries (comma-separated).
const BAD_NAME_CHARACTER = /[\x00-\x1f\x7f-\x9f,]/;

// ---------------------------------------------------------------- CHECKS

// CHECKS: comma-separated [name=]url. The name is everything before the "=" that directly
// precedes the scheme, so a URL may itself contain "=" (in its query) and a name may too.
const SCHEME = /^(?:https?|tcp|dns|push):\/\//i;
const NAMED_ENTRY = /^(.*?)=((?:https?|tcp|dns|push):\/\/.*)$/is;

/** The CHECKS variable: every check with every option at its default. */
export function parseCheckList(value: string, defaults: CheckDefaults): ParsedChecks {
  // Problems by entry, so that a name found used twice later is still listed in order.
  const problems: string[][] = [];
  const pending: Pending[] = [];
  const names = new Set<string>();
  for (const rawEntry of value.split(',')) {
    const entry = rawEntry.trim();
    if (entry === '') continue; // tolerate "a=...,", and spaces after commas
    const lines: string[] = [];
    problems.push(lines);
    let shown = redactUnparsedUrl(entry);
    const bad = (accepted: string): void => {
      lines.push(`config: CHECKS entries must be ${accepted}, got ${show(shown)}`);
    };
    const match = SCHEME.test(entry) ? [entry, undefined, entry] : NAMED_ENTRY.exec(entry);
    if (match === null) {
      bad('[name=]url with an http://, https://, tcp://host:port or dns://name url');
      continue;
    }
    const name = match[1] ?? null;
    let url: URL;
    try {
      url = new URL(match[2] as string);
    } catch {
      shown = `${name === null ? '' : `${name}=`}${redactUnparsedUrl(match[2] as string)}`;
      bad('[name=]url with a valid url');
      continue;
    }
    if (hasSecrets(url)) shown = `${name === null ? '' : `${name}=`}${redactUrl(url)}`;
    const kind = kindOfScheme(url.protocol) as CheckKind;
    if (kind === 'push') {
      bad('http, https, tcp or dns checks (a push:// check needs withinMs: define it in CONFIG_FILE)');
      continue;
    }
    if (name !== null && (name === '' || BAD_NAME_CHARACTER.test(name))) {
      bad('a name without control characters');
      continue;
    }
    const parts = commonParts({}, defaults, () => {});
    const def = buildCheck(kind, parts, url, {}, (_field, _given, accepted) => bad(accepted));
    const duplicate = (used: string): void => bad(`unique names (${JSON.stringify(used)} is used twice)`);
    if (name !== null) {
      if (names.has(name)) duplicate(name);
      names.add(name);
    }
    if (lines.length > 0) continue;
    pending.push({ def, url, name, duplicate });
  }
  const checks = assignNames(pending, names);
  return { checks, problems: problems.flat() };
}

// ---------------------------------------------------------------- CONFIG_FILE

const KNOWN_FIELDS: ReadonlySet<string> = new Set([
  ...COMMON_FIELDS,
  ...Object.values(CHECK_KINDS).flatMap((k) => k.fields),
]);
const URL_ACCEPTED = 'an http://, https://, tcp://host:port, dns://name or push:// url';

/**
 * CONFIG_FILE's "checks" array. `source` (the file's path) starts each problem; `taken` holds
 * the names CHECKS defined, which must not be used again.
 */
export function parseCheckDefinitions(
  entries: unknown,
  source: string,
  defaults: CheckDefaults,
  taken: ReadonlySet<string>,
): ParsedChecks {
  if (entries === undefined) return { checks: [], problems: [] };
  if (!Array.isArray(entries)) {
    return {
      checks: [],
      problems: [`config: ${source}: checks: ${show(entries)} is not an array of check definitions`],
    };
  }
  // Problems by entry, so that a name found used twice later is still listed in order.
  const problems: string[][] = [];
  const pending: Pending[] = [];
  const sites = new Map<string, string>();
  entries.forEach((entry: unknown, index) => {
    const lines: string[] = [];
    const entryProblems: string[] = [];
    problems.push(entryProblems);
    let label = `config: ${source}: checks[${index}]`;
    const report = (text: string): void => {
      lines.push(text);
    };
    const bad: Bad = (field, given, accepted) => {
      if (given === undefined) report(`${field} is required: ${accepted}`);
      else report(`${field}: ${field === 'url' ? shownUrl(given) : show(given)} is not ${accepted}`);
    };
    const flush = (): void => {
      for (const line of lines.splice(0)) entryProblems.push(`${label}: ${line}`);
    };
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      entryProblems.push(`${label}: ${show(entry)} is not an object like {"url": "https://example.com/health"}`);
      return;
    }
    const record = entry as Entry;

    const nameValue = record.name;
    let name: string | null = null;
    if (nameValue !== undefined) {
      if (typeof nameValue === 'string' && nameValue !== '' && !BAD_NAME_CHARACTER.test(nameValue)) name = nameValue;
      else bad('name', nameValue, NAME_ACCEPTED);
    }

    let url: URL | null = null;
    let kind: CheckKind | null = null;
    if (typeof record.url !== 'string') {
      bad('url', record.url, URL_ACCEPTED);
    } else {
      try {
        url = new URL(record.url);
        kind = kindOfScheme(url.protocol);
      } catch {
        // reported below
      }
      if (kind === null) bad('url', record.url, URL_ACCEPTED);
    }
    if (kind === 'push' && nameValue === undefined)
      bad('name', undefined, 'push checks are pushed to as POST /push/<name>');
    if (name !== null) {
      const other = taken.has(name) ? 'in CHECKS' : sites.get(name);
      if (other !== undefined) report(`name: ${JSON.stringify(name)} is used twice (also ${other})`);
      else sites.set(name, `checks[${index}]`);
    }
    const shownName =
      name ?? (nameValue === undefined && url !== null && kind !== null ? defaultName(kind, url, false) : null);
    if (shownName !== null) label += ` ${JSON.stringify(shownName)}`;

    // Fields: known, and taken by this kind; the others are left out of what is built.
    const fields = kind === null ? KNOWN_FIELDS : new Set<string>([...COMMON_FIELDS, ...CHECK_KINDS[kind].fields]);
    const usable: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(record)) {
      if (key === 'expect') {
        if (typeof value !== 'object' || value === null || Array.isArray(value)) {
          bad('expect', value, 'an object like {"status": [200, "300-308"], "bodyContains": "UP"}');
          continue;
        }
        const expect: Record<string, unknown> = {};
        for (const [sub, subValue] of Object.entries(value)) {
          if (acceptField(`expect.${sub}`, kind, fields, report)) expect[sub] = subValue;
        }
        usable.expect = expect;
      } else if (acceptField(key, kind, fields, report)) {
        usable[key] = value;
      }
    }

    const parts = commonParts(usable, defaults, bad);
    const def = url !== null && kind !== null ? buildCheck(kind, parts, url, usable, bad) : null;
    if (lines.length > 0 || def === null || url === null) {
      flush();
      return;
    }
    pending.push({
      def,
      url,
      name,
      duplicate: (dup) => {
        report(
          `name: ${JSON.stringify(dup)} is used twice (also ${taken.has(dup) ? 'in CHECKS' : sites.get(dup)}); ` +
            'give the checks names',
        );
        flush();
      },
      named: (final) => sites.set(final, `checks[${index}]`),
    });
  });
  const checks = assignNames(pending, new Set([...taken, ...sites.keys()]));
  return { checks, problems: problems.flat() };
}

/** Whether `field` may be used by a check of `kind`; if not, says why through `report`. */
function acceptField(
  field: string,
  kind: CheckKind | null,
  fields: ReadonlySet<string>,
  report: (text: string) => void,
): boolean {
  if (fields.has(field)) return true;
  if (!KNOWN_FIELDS.has(field)) {
    report(
      `${field}: unknown field; ${kind === null ? 'known fields are' : `${article(kind)} ${kind} check takes`} ` +
        [...fields].join(', '),
    );
    return false;
  }
  const takers = Object.entries(CHECK_KINDS)
    .filter(([, k]) => k.fields.includes(field))
    .map(([kindName]) => kindName);
  report(`${field}: ${kind} checks take no ${field} (only ${takers.join(', ')} checks do)`);
  return false;
}

function article(kind: CheckKind): string {
  return /^[aeiou]|^https?$/.test(kind) ? 'an' : 'a';
}

function shownUrl(given: unknown): string {
  if (typeof given !== 'string') return show(given);
  try {
    const url = new URL(given);
    return show(hasSecrets(url) ? redactUrl(url) : given);
  } catch {
    return show(redactUnparsedUrl(given));
  }
}

/** Whether showing the URL as given could show credentials or a query value. */
function hasSecrets(url: URL): boolean {
  return url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '';
}

// ---------------------------------------------------------------- shared

/** The options every kind has, read from `entry` (CHECKS entries have none: all defaults). */
function commonParts(entry: Entry, defaults: CheckDefaults, bad: Bad): Omit<CheckCommon, 'kind' | 'target'> {
  const timeoutMs = integerField(entry, 'timeoutMs', defaults.timeoutMs, 1, MAX_TIMER_MS, bad);
  let degradedMs: number | null = integerField(entry, 'degradedMs', 0, 1, MAX_TIMER_MS, bad) || null;
  if (degradedMs !== null && degradedMs >= timeoutMs) {
    bad('degradedMs', degradedMs, `less than timeoutMs (${timeoutMs}): a slower run is a timeout`);
    degradedMs = null;
  }
  return {
    name: '',
    timeoutMs,
    intervalMs: integerField(entry, 'intervalMs', defaults.intervalMs, MIN_INTERVAL_MS, MAX_TIMER_MS, bad),
    critical: booleanField(entry, 'critical', false, bad),
    failuresToDown: integerField(entry, 'failuresToDown', 1, 1, MAX_RUNS_TO_CHANGE, bad),
    successesToUp: integerField(entry, 'successesToUp', 1, 1, MAX_RUNS_TO_CHANGE, bad),
    degradedMs,
  };
}

/** A definition built without its name, waiting for the names of all to be known. */
interface Pending {
  readonly def: CheckDefinition;
  readonly url: URL;
  /** The name given, or null for the default. */
  readonly name: string | null;
  /** Reports that `name` is already used. */
  readonly duplicate: (name: string) => void;
  readonly named?: (name: string) => void;
}

/**
 * Names each check: its own (already known to be unique), else host:port, or host:port with
 * the path when two unnamed checks (or a name in `reserved`) would clash. A default name
 * used twice is a problem.
 */
function assignNames(pending: readonly Pending[], reserved: ReadonlySet<string>): CheckDefinition[] {
  const shortCounts = new Map<string, number>();
  for (const p of pending) {
    if (p.name !== null) continue;
    const short = defaultName(p.def.kind, p.url, false);
    if (short !== null) shortCounts.set(short, (shortCounts.get(short) ?? 0) + 1);
  }
  const used = new Set(reserved);
  const checks: CheckDefinition[] = [];
  for (const p of pending) {
    let name = p.name;
    if (name === null) {
      const short = defaultName(p.def.kind, p.url, false);
      name =
        short === null || (shortCounts.get(short) ?? 0) > 1 || used.has(short)
          ? defaultName(p.def.kind, p.url, true)
          : short;
      // Push checks have no default name: their name is required, so name is never null here.
      if (name === null || used.has(name)) {
        p.duplicate(name ?? '');
        continue;
      }
      used.add(name);
      p.named?.(name);
    }
    checks.push(Object.freeze({ ...p.def, name }));
  }
  return checks;
}
