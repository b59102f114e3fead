// STATE_DIR (docs/history.md): created as mkdir -p and proved writable, files replaced atomically
// and one save at a time, and a file that cannot be read renamed aside with its bytes, never lost.
// Real files in a temporary directory.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import { History } from '../history.ts';
import { createLogger } from '../log.ts';
import { StateStore } from '../state-store.ts';
import { sleep, withDeadline } from './helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'state-store-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = (): string => join(root, `dir-${++dirs}`);

function logger(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { log: createLogger('debug', (line) => lines.push(JSON.parse(line) as Record<string, unknown>)), lines };
}

function* countedPieces(label: string, pieces: number, events: string[]): Generator<string> {
  events.push(`start ${label}`);
  yield `{"label":${JSON.stringify(label)},"pieces":[`;
  for (let i = 0; i < pieces; i++) yield `${i === 0 ? '' : ','}"${label}-${i}-${'x'.repeat(20_000)}"`;
  yield ']}';
  events.push(`end ${label}`);
}

test('open creates a missing directory as mkdir -p and leaves nothing behind', () => {
  const dir = join(freshDir(), 'a', 'b');
  const store = StateStore.open(dir);
  assert.equal(store.dir, dir);
  assert.deepEqual(readdirSync(dir), []);
  // An existing directory is fine too, and a relative path is made absolute.
  assert.equal(StateStore.open(dir).dir, dir);
  const other = freshDir();
  assert.equal(StateStore.open(relative(process.cwd(), other)).dir, other);
});

// The suite runs as root in CI, where chmod 0555 does not stop writes; a path under a regular file
// cannot be created by anyone, which exercises the same error path.
test('open throws an error naming STATE_DIR, the path and the cause when the directory cannot be made', () => {
  const file = join(root, 'a-file');
  writeFileSync(file, 'not a directory');
  assert.throws(
    () => StateStore.open(join(file, 'sub')),
    (err: Error) => {
      assert.match(err.message, /^STATE_DIR ".*a-file\/sub" cannot be used: could not create it: ENOTDIR/);
      assert.ok(err.cause instanceof Error);
      return true;
    },
  );
  assert.throws(
    () => StateStore.open(file),
    /^Error: STATE_DIR ".*a-file" cannot be used: could not create it: EEXIST/,
  );
  assert.throws(
    () => StateStore.open(`${file}/../a-file/x`),
    /^Error: STATE_DIR ".*a-file\/\.\.\/a-file\/x" \(\/.*\) cannot/,
  );
});

test('load answers null for a missing file', () => {
  const store = StateStore.open(freshDir());
  assert.equal(store.load('history.json', logger().log), null);
});

test('save writes the pieces and load reads them back, leaving no temporary file', async () => {
  const store = StateStore.open(freshDir());
  const { log, lines } = logger();
  await store.save('history.json', ['{"a":', '[1,2', ',3]}']);
  assert.deepEqual(store.load('history.json', log), { a: [1, 2, 3] });
  await store.save('push.json', '{"b":"é"}');
  assert.deepEqual(store.load('push.json', log), { b: 'é' });
  await store.save('push.json', (function* () {})());
  assert.equal(readFileSync(join(store.dir, 'push.json'), 'utf8'), '');
  assert.deepEqual(readdirSync(store.dir).sort(), ['history.json', 'push.json']);
  assert.deepEqual(lines, []);
});

test('pieces larger than the write buffer, in characters of 2 to 4 bytes, are written whole', async () => {
  const store = StateStore.open(freshDir());
  // Odd lengths, so that characters straddle every buffer boundary.
  const pieces = ['"', 'é'.repeat(150_001), '😀'.repeat(70_001), 'x'.repeat(65_537), '€'.repeat(90_001), '"'];
  await store.save('big.json', pieces);
  assert.equal(readFileSync(join(store.dir, 'big.json'), 'utf8'), pieces.join(''));
  assert.equal(store.load('big.json', logger().log), pieces.slice(1, -1).join(''));
});

test('a history saved and loaded through the store answers as before', async () => {
  const store = StateStore.open(freshDir());
  const history = new History();
  const now = Date.UTC(2024, 5, 1, 12, 0, 0);
  for (let i = 0; i < 500; i++)
    history.record(`check-${i % 5}`, i % 7 === 0 ? 'down' : 'up', i % 300, now - i * 60_000);
  history.addTransition({ time: new Date(now).toISOString(), check: null, from: 'up', to: 'down', reason: 'x' });
  await store.save('history.json', history.jsonPieces());
  const copy = store.load('history.json', logger().log, History.fromJSON);
  assert.ok(copy instanceof History);
  const q = { range: '24h', buckets: 48, checks: history.names() } as const;
  assert.deepEqual(copy.query(q, now), history.query(q, now));
});

function assertSetAside(dir: string, bytes: Buffer, problem: RegExp, revive?: (v: unknown) => unknown): void {
  writeFileSync(join(dir, 'history.json'), bytes);
  const store = StateStore.open(dir);
  const { log, lines } = logger();
  const before = new Set(readdirSync(dir));
  assert.equal(store.load('history.json', log, revive), null);
  const aside = readdirSync(dir).filter((name) => !before.has(name));
  assert.equal(aside.length, 1, 'one new file');
  assert.match(aside[0], /^history\.json\.corrupt-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z$/);
  assert.ok(!readdirSync(dir).includes('history.json'), 'nothing left under the old name');
  assert.deepEqual(readFileSync(join(dir, aside[0])), bytes, 'the aside file holds the original bytes');
  assert.equal(lines.length, 1);
  assert.equal(lines[0].level, 50);
  assert.match(String(lines[0].msg), problem);
  assert.equal(lines[0].renamedTo, aside[0]);
  assert.equal(lines[0].file, 'history.json');
}

test('a truncated state file is renamed aside with its bytes, logged at error, and load answers null', () => {
  const history = new History();
  history.record('api', 'up', 12.5, Date.UTC(2024, 0, 1));
  const whole = [...history.jsonPieces()].join('');
  const dir = freshDir();
  mkdirSync(dir);
  assertSetAside(dir, Buffer.from(whole.slice(0, whole.length / 2)), /^state file history\.json is not valid JSON: /);
  // Empty, as a crash between create and write would leave it.
  assertSetAside(dir, Buffer.alloc(0), /is not valid JSON/);
});

test('a garbage state file is renamed aside with its bytes, and so is one that is not UTF-8', () => {
  const dir = freshDir();
  mkdirSync(dir);
  assertSetAside(dir, Buffer.from('garbage\n\x00\x01'), /^state file history\.json is not valid JSON/);
  assertSetAside(dir, Buffer.from([0x22, 0xff, 0xfe, 0x22]), /^state file history\.json is not UTF-8 text/);
});

test('a state file that revive refuses is renamed aside with the reason', () => {
  const dir = freshDir();
  mkdirSync(dir);
  const bytes = Buffer.from('{"version":99,"transitions":[],"checks":[]}');
  assertSetAside(
    dir,
    bytes,
    /^state file history\.json is not a valid state file: history\.version must be 1, 2 or 3, got 99/,
    History.fromJSON,
  );
});

test('a state file that cannot be read (a directory in its place) is renamed aside', () => {
  const dir = freshDir();
  mkdirSync(join(dir, 'history.json'), { recursive: true });
  const store = StateStore.open(dir);
  const { log, lines } = logger();
  assert.equal(store.load('history.json', log), null);
  assert.match(String(lines[0].msg), /^state file history\.json cannot be read: EISDIR/);
  assert.deepEqual(readdirSync(dir).length, 1);
  assert.match(readdirSync(dir)[0], /^history\.json\.corrupt-/);
});

test('a second corrupt file in the same millisecond gets a name of its own, never overwriting the first', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: Date.UTC(2024, 2, 3, 4, 5, 6, 789) });
  const dir = freshDir();
  const store = StateStore.open(dir);
  const { log } = logger();
  for (const bytes of ['first', 'second', 'third']) {
    writeFileSync(join(dir, 'history.json'), bytes);
    assert.equal(store.load('history.json', log), null);
  }
  const stamp = '2024-03-03T04-05-06.789Z';
  assert.equal(readFileSync(join(dir, `history.json.corrupt-${stamp}`), 'utf8'), 'first');
  assert.equal(readFileSync(join(dir, `history.json.corrupt-${stamp}-1`), 'utf8'), 'second');
  assert.equal(readFileSync(join(dir, `history.json.corrupt-${stamp}-2`), 'utf8'), 'third');
});

test('concurrent saves of one name run one after another in call order, and the last one wins', async () => {
  const store = StateStore.open(freshDir());
  const events: string[] = [];
  const saves = ['a', 'b', 'c', 'd'].map((label) => store.save('history.json', countedPieces(label, 20, events)));
  // Another name is not held up behind them.
  await withDeadline(store.save('other.json', '{}'), 10_000, 'the other save');
  await withDeadline(Promise.all(saves), 20_000, 'the saves');
  assert.deepEqual(events, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c', 'start d', 'end d']);
  const saved = store.load('history.json', logger().log) as { label: string; pieces: string[] };
  assert.equal(saved.label, 'd');
  assert.equal(saved.pieces.length, 20);
  assert.ok(saved.pieces.every((p, i) => p.startsWith(`d-${i}-`)));
  assert.deepEqual(readdirSync(store.dir).sort(), ['history.json', 'other.json']);
});

test('a save that fails leaves the old file, rejects naming STATE_DIR, and the next save still runs', async () => {
  const store = StateStore.open(freshDir());
  await store.save('history.json', '{"good":1}');
  function* failing(): Generator<string> {
    yield '{"half":';
    yield 'x'.repeat(100_000);
    throw new Error('the generator broke');
  }
  const broken = store.save('history.json', failing());
  const next = store.save('history.json', '{"good":2}');
  await assert.rejects(broken, /^Error: STATE_DIR ".*": could not save history\.json: the generator broke$/);
  await next;
  assert.deepEqual(store.load('history.json', logger().log), { good: 2 });
  assert.deepEqual(readdirSync(store.dir), ['history.json']);
  // A directory removed under the store: the save rejects, and says where.
  rmSync(store.dir, { recursive: true });
  await assert.rejects(store.save('history.json', '{}'), /STATE_DIR ".*": could not save history\.json: ENOENT/);
});

test('refuses a state file name that is not a plain file name', async () => {
  const store = StateStore.open(freshDir());
  for (const name of ['', '.', '..', 'a/b', '../x', 'a\\b', 'a\0b']) {
    assert.throws(() => store.save(name, '{}'), /state-store: a state file name must be a plain file name/);
    assert.throws(() => store.load(name, logger().log), TypeError);
  }
});

test('a save in progress leaves the event loop free for a 5 ms timer', async () => {
  const store = StateStore.open(freshDir());
  const history = new History();
  const now = Date.UTC(2024, 5, 1);
  for (let c = 0; c < 20; c++) {
    for (let h = 0; h < 2160; h += 3) history.record(`check-${c}`, 'up', 100 + c, now - h * 3_600_000);
  }
  let longestGapMs = 0;
  let ticks = 0;
  let saveMs = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const t = performance.now();
    longestGapMs = Math.max(longestGapMs, t - last);
    last = t;
    ticks++;
  }, 5);
  try {
    await sleep(20);
    ticks = 0;
    longestGapMs = 0;
    last = performance.now();
    const startMs = performance.now();
    await withDeadline(store.save('history.json', history.jsonPieces()), 30_000, 'the save');
    saveMs = performance.now() - startMs;
  } finally {
    clearInterval(timer);
  }
  // Loose on purpose (a busy 2-core CI machine): the real measurement is bench/history-memory.ts.
  assert.ok(longestGapMs < 200, `longest gap ${longestGapMs.toFixed(1)} ms in a save of ${saveMs.toFixed(1)} ms`);
  if (saveMs > 50) assert.ok(ticks > 0, 'the timer ran during the save');
});
