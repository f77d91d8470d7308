import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_STAGGER } from '../scheduler/admission.js';
import { parseAgentConfig } from './config.js';

describe('the agent\'s --config file', () => {
  it('sets the scheduler\'s budgets (sizes with units, dumps per core) and the jobs started at once', () => {
    const c = parseAgentConfig(JSON.stringify({
      scheduler: { dumpsPerCore: 0.5, memoryBytes: '2G', diskBytes: 1000, memoryBandwidth: '512M', diskBandwidth: '300MB' },
      maxRunningJobs: 3,
    }), 'agent.json', 8);
    assert.deepEqual(c, { scheduler: { dumps: 4, memoryBytes: 2 ** 31, diskBytes: 1000, memoryBandwidth: 512 * 2 ** 20, diskBandwidth: 300e6 }, maxRunningJobs: 3 });
    assert.equal(parseAgentConfig('{"scheduler":{"dumpsPerCore":0.1}}', 'a', 2).scheduler.dumps, 1, 'at least one dump');
    assert.deepEqual(parseAgentConfig('{"scheduler":{"dumps":2}}', 'a').scheduler, { dumps: 2 });
    assert.deepEqual(parseAgentConfig('{}', 'a'), { scheduler: {} });
  });

  it('names a freeze policy: one, two, or staggered with its share', () => {
    assert.deepEqual(parseAgentConfig('{"scheduler":{"policy":"one"}}', 'a').scheduler, { dumps: 1, stagger: undefined });
    assert.deepEqual(parseAgentConfig('{"scheduler":{"policy":"two","memoryBytes":"1G"}}', 'a').scheduler, { dumps: 2, stagger: undefined, memoryBytes: 2 ** 30 });
    assert.deepEqual(parseAgentConfig('{"scheduler":{"policy":"staggered","stagger":0.7}}', 'a').scheduler, { dumps: 2, stagger: 0.7 });
    assert.equal(parseAgentConfig('{"scheduler":{"policy":"staggered"}}', 'a').scheduler.stagger, DEFAULT_STAGGER);
  });

  it('refuses what cannot be meant, naming the file and the field', () => {
    for (const [text, why] of [
      ['{', /agent\.json is invalid/],
      ['[]', /expected object/],
      ['{"scheduler":{"dumps":0}}', /scheduler\.dumps/],
      ['{"scheduler":{"dumps":1,"dumpsPerCore":1}}', /not both/],
      ['{"scheduler":{"memoryBytes":"lots"}}', /memoryBytes.*not a size/],
      ['{"scheduler":{"memoryBandwith":"1G"}}', /memoryBandwith/],
      ['{"scheduler":{"diskBandwidth":0}}', /diskBandwidth: must be more than 0/],
      ['{"maxRunningJobs":0}', /maxRunningJobs/],
      ['{"scheduler":{"policy":"three"}}', /scheduler\.policy/],
      ['{"scheduler":{"policy":"two","dumps":3}}', /policy or dumps/],
      ['{"scheduler":{"policy":"staggered","stagger":0}}', /scheduler\.stagger/],
      ['{"scheduler":{"policy":"two","stagger":0.5}}', /"staggered" policy/],
    ] as const) {
      assert.throws(() => parseAgentConfig(text, 'agent.json'), (e: { code?: string; message?: string }) => e.code === 'ERR_BAD_OPTION' && why.test(e.message ?? '') && /agent\.json/.test(e.message ?? ''), text);
    }
  });
});
