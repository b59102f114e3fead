// The heap probe (bench/heap-watch.ts), loaded with --import into a child that allocates and
// collects: it writes a line per period with the process's figures and its collections.
// Run: node --import tsx --test bench/heap-watch.test.ts

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ParserCounts } from './parser-pool.ts';
import { exited, spawnTracked } from './processes.ts';

const probe = fileURLToPath(new URL('./heap-watch.ts', import.meta.url));

/** One line of the probe's file. */
interface ProbeLine {
  [figure: string]: unknown;
  s: number;
  gc: Record<string, { count: number; ms: number }>;
  parsers: ParserCounts | null;
  cpuPercent: number;
  rssMiB: number;
  heapUsedMiB: number;
  oldUsedMiB: number;
  oldSizeMiB: number;
}

/** Runs `program` (node -e) with the probe loaded, a line every `everyMs`; the lines it wrote. */
async function probeLines(
  t: TestContext,
  program: string,
  everyMs: number,
  nodeArgs: string[] = [],
): Promise<ProbeLine[]> {
  const dir = mkdtempSync(join(tmpdir(), 'heap-watch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'watch.jsonl');
  const child = spawnTracked(process.execPath, [...nodeArgs, '--import', 'tsx', '--import', probe, '-e', program], {
    stdio: 'ignore',
    env: { ...process.env, HEAP_WATCH_FILE: file, HEAP_WATCH_MS: String(everyMs) },
  });
  assert.equal(await exited(child, 10_000), true);
  assert.equal(child.exitCode, 0);
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as ProbeLine);
}

test('heap-watch writes a line per period: CPU, RSS, heap, old space, and the collections by kind', async (t) => {
  // Allocates for 1.2 s (young collections), with one forced major collection halfway.
  const program =
    'const t0 = Date.now(); let keep = [];' +
    'const tick = () => { for (let i = 0; i < 2e4; i++) keep.push({ i }); if (keep.length > 2e5) keep = [];' +
    ' if (Date.now() - t0 > 600 && globalThis.gc && !globalThis.done) { globalThis.done = true; gc(); }' +
    ' if (Date.now() - t0 < 1200) setTimeout(tick, 5); };' +
    'tick();';
  const lines = await probeLines(t, program, 200, ['--expose-gc']);
  assert.ok(lines.length >= 4, `${lines.length} lines in 1.2 s at one per 200 ms`);
  for (const line of lines) {
    for (const key of ['s', 'cpuPercent', 'rssMiB', 'heapUsedMiB', 'oldUsedMiB', 'oldSizeMiB', 'externalMiB']) {
      assert.equal(typeof line[key], 'number', `${key} in ${JSON.stringify(line)}`);
    }
    assert.ok(line.rssMiB > line.heapUsedMiB && line.oldSizeMiB >= line.oldUsedMiB, JSON.stringify(line));
  }
  assert.deepEqual(
    lines.map((line) => line.s),
    [...lines.map((line) => line.s)].sort((a, b) => a - b),
  );
  const count = (kind: string): number => lines.reduce((n, line) => n + (line.gc[kind]?.count ?? 0), 0);
  assert.ok(count('minor') > 0, 'young collections while allocating');
  assert.ok(count('major') > 0, 'the forced major collection');
  assert.ok(
    lines.some((line) => line.cpuPercent > 10),
    'a period spent allocating',
  );
});

test("heap-watch counts Node's HTTP parsers: out at once, pooled, made", async (t) => {
  // 8 requests to its own server, each on its own connection, all held unanswered for 300 ms:
  // 8 server parsers and 8 client parsers out at once; then answered, closed, and pooled.
  const program =
    "const http = require('node:http'); const held = [];" +
    'const server = http.createServer((req, res) => { held.push(res);' +
    " if (held.length === 8) setTimeout(() => { for (const r of held) r.end('ok'); }, 300); });" +
    "server.listen(0, '127.0.0.1', () => { let done = 0;" +
    " for (let i = 0; i < 8; i++) http.get({ host: '127.0.0.1', port: server.address().port, agent: false }, (res) => {" +
    " res.resume(); res.on('end', () => { if (++done === 8) setTimeout(() => server.close(), 300); }); }); });";
  const parsers = (await probeLines(t, program, 100)).map((line) => {
    assert.ok(line.parsers !== null, 'this Node has a parser pool');
    return line.parsers;
  });
  const most = (key: keyof ParserCounts): number => Math.max(...parsers.map((p) => p[key]));
  assert.ok(most('outMax') >= 16, `at most ${most('outMax')} out at once`);
  assert.ok(most('created') >= 16, `${most('created')} made`);
  assert.ok(most('pooled') >= 8, `at most ${most('pooled')} pooled once answered`);
  for (const p of parsers) assert.ok(p.out <= p.outMax && p.created >= p.pooled, JSON.stringify(p));
});
