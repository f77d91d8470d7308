import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuMeter, processTreeS } from './cpu-use.js';

describe('cpu use from /proc', () => {
  it('counts the CPU a busy loop burns, in this process and on the machine', () => {
    const meter = cpuMeter({ self: process.pid });
    const end = Date.now() + 300;
    let x = 0;
    while (Date.now() < end) x += Math.sqrt(x + 1);
    const used = meter.stop();
    assert.ok(x > 0);
    assert.ok((used['self'] ?? 0) >= 0.1, `self ${used['self']}`);
    assert.ok(used['machine']! >= used['self']! - 0.05, `machine ${used['machine']} ≥ self ${used['self']}`);
  });
  it('a process that is gone has no figure', () => {
    assert.equal(processTreeS(2 ** 22 + 1), undefined);
    assert.deepEqual(Object.keys(cpuMeter({ gone: 2 ** 22 + 1 }).stop()), ['machine']);
  });
});
