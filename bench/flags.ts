// bench/flags.ts: the integer command-line flags of the bench's programs, checked the
// same way everywhere: a bad value is one line on stderr and exit code 2.

/** Parses `value` as an integer from `min` to `max`, or exits naming `program`, the flag and the value. */
export function intFlag(program: string, name: string, value: string | undefined, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`${program}: --${name} must be an integer ${min}-${max}, got ${JSON.stringify(value)}\n`);
    process.exit(2);
  }
  return n;
}
