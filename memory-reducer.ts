// memory-reducer.ts: lets V8 give memory back after a peak on Node 24 and later.
//
// V8 hands freed pages back to the system in a "memory reducer" collection, which it runs
// once every heap's allocation rate is low, the embedder's C++ heap (cppgc) included. Since
// V8 13.1 (Node 24) a heap with no allocation for a while reports a rate of exactly 0, which
// V8 reads as the highest (https://chromium-review.googlesource.com/c/v8/v8/+/5935313). A
// process that allocates nothing there keeps its peak RSS after 10,000 streams close: for
// 100-170 s, and for good while checks run (bench/README.md, "Memory after the clients
// leave, on Node 24").
//
// Compiling a script puts a small object on that heap (node:vm's ContextifyScript). V8
// counts it when it needs new memory there, after a major collection, and the rate then
// stays tiny but not 0 for about 100 s, which passes V8's test. Where no major collection
// ran for 100 s, V8's own watchdog starts the reducer. On Node 20, which gives memory back
// without it, the compile only costs its 5-15 µs.

import vm from 'node:vm';

// Soon after each major collection; the reducer looks every 8 s.
const TOUCH_EVERY_MS = 30_000;

/** Touches the embedder heap now and every 30 s; the timer never keeps the process alive. */
export function keepMemoryReducerWorking(): void {
  touchEmbedderHeap();
  setInterval(touchEmbedderHeap, TOUCH_EVERY_MS).unref();
}

function touchEmbedderHeap(): void {
  new vm.Script('');
}
