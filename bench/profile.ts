// bench/profile.ts: reads a V8 .cpuprofile (from `node --cpu-prof`, which `npm run bench --
// --cpu-prof` passes to the servers) and says where the time went: self and total time
// by function, and by where the code lives (our files, Node's internals, GC, idle). It can
// also write folded stacks, the input of flamegraph.pl and speedscope, for a flame graph.
// Only reads the file it is given and writes where it is told.
//
//   node --import tsx bench/profile.ts PROFILE.cpuprofile [--top 25] [--from S] [--to S] [--folded OUT]
//
// --from/--to keep the samples between those seconds after the profile started.

import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Row {
  name: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  /** Milliseconds covered by the kept samples. */
  totalMs: number;
  /** Busy time: everything but (idle). */
  busyMs: number;
  self: Row[];
  total: Row[];
  categories: Row[];
}

const ROOT = process.cwd();

function shortUrl(url: string): string {
  if (url === '') return '';
  if (url.startsWith('node:')) return url;
  let path = url;
  if (url.startsWith('file://')) {
    try {
      path = fileURLToPath(url);
    } catch {
      return url;
    }
  }
  const rel = relative(ROOT, path);
  return rel.startsWith('..') ? path : rel;
}

function frameName(frame: CallFrame): string {
  const fn = frame.functionName === '' ? '(anonymous)' : frame.functionName;
  const url = shortUrl(frame.url);
  return url === '' ? fn : `${fn} ${url}:${frame.lineNumber + 1}`;
}

function category(frame: CallFrame): string {
  const fn = frame.functionName;
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return 'native / program';
  if (frame.url.startsWith('node:')) return 'Node internals (node:*)';
  if (frame.url.includes('/node_modules/')) return 'node_modules';
  if (frame.url === '') return 'native / builtins';
  return 'our code';
}

/** The profile's call tree as two maps: node by id, and each node's parent id. */
function indexNodes(profile: CpuProfile): { byId: Map<number, ProfileNode>; parent: Map<number, number> } {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  return { byId, parent };
}

export function summarize(
  profile: CpuProfile,
  options: { top?: number; fromS?: number; toS?: number } = {},
): ProfileSummary {
  const top = options.top ?? 25;
  const { byId, parent } = indexNodes(profile);
  const selfUs = new Map<string, number>();
  const totalUs = new Map<string, number>();
  const catUs = new Map<string, number>();
  const fromUs = (options.fromS ?? 0) * 1e6;
  const toUs = (options.toS ?? Number.POSITIVE_INFINITY) * 1e6;
  let t = 0;
  let kept = 0;
  let idle = 0;
  const n = profile.samples.length;
  for (let i = 0; i < n; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (t < fromUs || t > toUs) continue;
    // A sample stands for the time until the next one.
    const dur = i + 1 < n ? (profile.timeDeltas[i + 1] ?? 0) : 0;
    if (dur <= 0) continue;
    const node = byId.get(profile.samples[i] as number);
    if (!node) continue;
    kept += dur;
    const name = frameName(node.callFrame);
    selfUs.set(name, (selfUs.get(name) ?? 0) + dur);
    const cat = category(node.callFrame);
    catUs.set(cat, (catUs.get(cat) ?? 0) + dur);
    if (node.callFrame.functionName === '(idle)') idle += dur;
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = (byId.get(id) as ProfileNode).callFrame;
      if (frame.functionName === '(root)') break;
      const key = frameName(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      totalUs.set(key, (totalUs.get(key) ?? 0) + dur);
    }
  }
  const busy = kept - idle;
  const rows = (m: Map<string, number>, limit: number, base: number): Row[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, us]) => ({
        name,
        ms: Math.round(us / 100) / 10,
        percent: base > 0 ? Math.round((1000 * us) / base) / 10 : 0,
      }));
  selfUs.delete('(idle)');
  totalUs.delete('(idle)');
  return {
    totalMs: Math.round(kept / 1000),
    busyMs: Math.round(busy / 1000),
    self: rows(selfUs, top, busy),
    total: rows(totalUs, top, busy),
    categories: rows(catUs, 20, kept),
  };
}

/** Folded stacks ("root;caller;callee count-in-µs" per line) for flamegraph.pl or speedscope. */
export function folded(profile: CpuProfile): string {
  const { byId, parent } = indexNodes(profile);
  const stacks = new Map<number, number>();
  const n = profile.samples.length;
  for (let i = 0; i + 1 < n; i++) {
    const id = profile.samples[i] as number;
    stacks.set(id, (stacks.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  const lines: string[] = [];
  for (const [id, us] of stacks) {
    if (us <= 0) continue;
    const names: string[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = (byId.get(at) as ProfileNode).callFrame;
      if (frame.functionName === '(root)') break;
      names.push(frameName(frame).replace(/;/g, ','));
    }
    lines.push(`${names.reverse().join(';')} ${Math.round(us)}`);
  }
  return `${lines.join('\n')}\n`;
}

export function formatSummary(s: ProfileSummary): string {
  const table = (title: string, rows: Row[]): string =>
    `${title}\n${rows.map((r) => `  ${r.ms.toFixed(1).padStart(9)} ms ${r.percent.toFixed(1).padStart(5)}%  ${r.name}`).join('\n')}\n`;
  return (
    `samples cover ${s.totalMs} ms, of which busy (not idle) ${s.busyMs} ms\n` +
    table('by category (% of all time):', s.categories) +
    table('self time by function (% of busy time):', s.self) +
    table('total time by function, callees included (% of busy time):', s.total)
  );
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: 'string', default: '25' },
      from: { type: 'string' },
      to: { type: 'string' },
      folded: { type: 'string' },
    },
  });
  const file = positionals[0];
  if (file === undefined) {
    process.stderr.write(
      'usage: node --import tsx bench/profile.ts PROFILE.cpuprofile [--top N] [--from S] [--to S] [--folded OUT]\n',
    );
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const summary = summarize(profile, {
    top: Number(values.top),
    fromS: values.from === undefined ? undefined : Number(values.from),
    toS: values.to === undefined ? undefined : Number(values.to),
  });
  process.stdout.write(formatSummary(summary));
  if (values.folded !== undefined) {
    writeFileSync(values.folded, folded(profile));
    process.stdout.write(`folded stacks written to ${values.folded} (flamegraph.pl, or drop it on speedscope)\n`);
  }
}
