// bench/reducer-repro.ts: V8 13.1 and later (Node 24) never find a process quiet that
// allocates nothing on the embedder's C++ heap, so RSS stays at its peak after a burst.
// No project code: a burst of garbage, then a minute of nothing, RSS every 10 s. With
// `touch`, one `vm.Script` compile first (what memory-reducer.ts does every 30 s).
// bench/README.md, "Memory after the clients leave, on Node 24", has the figures.
//
//   .cache/node24/node_modules/node/bin/node --trace-memory-reducer \
//     --trace-mutator-utilization bench/reducer-repro.ts [touch]
//   node --import tsx bench/reducer-repro.ts          # Node 20: no such trace flags

import vm from 'node:vm';

const EVERY_MS = 10_000;
const READINGS = 6;

if (process.argv[2] === 'touch') new vm.Script('');
let burst: object[][] | null = [];
for (let i = 0; i < 60; i++) burst.push(Array.from({ length: 100_000 }, (_, j) => ({ j })));
burst = null;
let readings = 0;
const timer = setInterval(() => {
  readings += 1;
  const rss = Math.round(process.memoryUsage().rss / 2 ** 20);
  process.stdout.write(`${process.version} rss ${(readings * EVERY_MS) / 1000} s after the burst: ${rss} MiB\n`);
  if (readings === READINGS) clearInterval(timer);
}, EVERY_MS);
