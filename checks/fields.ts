// checks/fields.ts: reads the fields of one check definition, each with its type and
// range. A bad value is reported through `bad` (field, value given, what is accepted) and
// the default is used so that the rest can still be checked; it never throws.

/** One definition from CONFIG_FILE, or {} for a CHECKS entry (every option at its default). */
export type Entry = Readonly<Record<string, unknown>>;
/** Reports that `field` had the value `given`, and what it accepts. */
export type Bad = (field: string, given: unknown, accepted: string) => void;

// setTimeout() treats larger delays as 1 ms (Node docs, setTimeout), so no timer may exceed it.
export const MAX_TIMER_MS = 2_147_483_647;

/** The value at a field, a dotted name reaching into a sub-object ('expect.status'); undefined when absent. */
export function fieldValue(entry: Entry, field: string): unknown {
  let value: unknown = entry;
  for (const key of field.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, key))
      return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

export function integerField(
  entry: Entry,
  field: string,
  fallback: number,
  min: number,
  max: number,
  bad: Bad,
): number {
  const value = fieldValue(entry, field);
  if (value === undefined) return fallback;
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
  bad(field, value, `an integer from ${min} to ${max}`);
  return fallback;
}

export function booleanField(entry: Entry, field: string, fallback: boolean, bad: Bad): boolean {
  const value = fieldValue(entry, field);
  if (value === undefined) return fallback;
  if (typeof value === 'boolean') return value;
  bad(field, value, 'true or false');
  return fallback;
}

export function stringField(entry: Entry, field: string, bad: Bad): string | null {
  const value = fieldValue(entry, field);
  if (value === undefined) return null;
  if (typeof value === 'string' && value !== '') return value;
  bad(field, value, 'a non-empty string');
  return null;
}

/** A value given, for an error line: JSON (control characters escaped), cut at 80 characters. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
