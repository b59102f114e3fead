// memory-reducer.ts acts only where V8 reads an idle C++ heap as a busy one: V8 13.1 and
// later. Its effect on Node 24 is tested in node24.test.ts, against V8's own trace.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readsIdleHeapAsBusy } from '../memory-reducer.ts';

test('the embedder heap is touched from V8 13.1 on, and left alone before', () => {
  assert.equal(readsIdleHeapAsBusy('11.3.244.8-node.38'), false); // Node 20
  assert.equal(readsIdleHeapAsBusy('12.4.254.21-node.33'), false); // Node 22
  assert.equal(readsIdleHeapAsBusy('13.0.245.25'), false);
  assert.equal(readsIdleHeapAsBusy('13.1.201.8'), true);
  assert.equal(readsIdleHeapAsBusy('13.6.233.17-node.53'), true); // Node 24
  assert.equal(readsIdleHeapAsBusy('14.6.202.11'), true);
});
