// memory-reducer.ts: lets V8 give memory back after a peak on Node 24 and later.
//
// V8 hands freed pages back to the system in a "memory reducer" collection, which it runs
// once every heap's allocation rate is low, the embedder's C++ heap (cppgc) included. Since
// V8 13.1 (Node 24) a heap with no allocation for a while reports a rate of exactly 0, which
// V8 reads as the highest (https://chromium-review.googlesource.com/c/v8/v8/+/5935313). A
// process that allocates nothing there keeps its peak RSS after 10,000 streams close: for
// 100 s or more, and for good while checks run (bench/README.md, "Memory after the clients
// leave, on Node 24", also for what this leaves: a reducer that already ran while the
// streams were open does not run again for them).
//
// Compiling a script puts a small object on that heap (node:vm's ContextifyScript). V8
// counts it when it needs new memory there, after a major collection, and the rate then
// stays tiny but not 0 for about 100 s, which passes V8's test. Where no major collection
// ran for 100 s, V8's own watchdog starts the reducer. Before V8 13.1 (Node 20 and 22) the
// rate V8 reads is never exactly 0: nothing to mend.

import vm from 'node:vm';

// Soon after each major collection; the reducer looks every 8 s.
const TOUCH_EVERY_MS = 30_000;

/** Where V8 needs it, touches the embedder heap now and every 30 s (an unref'd timer). */
export function keepMemoryReducerWorking(): void {
  if (!readsIdleHeapAsBusy(process.versions.v8)) return;
  touchEmbedderHeap();
  setInterval(touchEmbedderHeap, TOUCH_EVERY_MS).unref();
}

/** V8 13.1 and later read an embedder heap that allocates nothing as the busiest. */
export function readsIdleHeapAsBusy(v8Version: string): boolean {
  const [major = 0, minor = 0] = v8Version.split('.').map(Number);
  return major > 13 || (major === 13 && minor >= 1);
}

function touchEmbedderHeap(): void {
  new vm.Script('');
}
