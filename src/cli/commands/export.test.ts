import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FerryError, isFerryError } from '../../util/errors.js';
import { blame } from './export.js';

const sysErr = (code: string, path?: string): Error => Object.assign(new Error(`${code}: boom${path ? `, open '${path}'` : ''}`), { code, ...(path ? { path } : {}) });
const chain = [{ id: 'snap-a', dir: '/store/snapshots/snap-a' }, { id: 'snap-b', dir: '/store/snapshots/snap-b' }];

describe('export: whose fault', () => {
  it('a read error on a snapshot file names the snapshot and the file, not the output', () => {
    const e = blame(new FerryError('ERR_EXPORT', 'export of snap-b failed', { cause: sysErr('ENOENT', '/store/snapshots/snap-a/pages-1.img') }), chain, '/out/x.ferry');
    assert.ok(isFerryError(e, 'ERR_SNAPSHOT_CORRUPT'));
    assert.match(e.message, /cannot read pages-1\.img of snapshot snap-a/);
    assert.doesNotMatch(e.message, /x\.ferry/);
  });
  it('any other system error is the output\'s', () => {
    const e = blame(sysErr('ENOSPC'), chain, '/out/x.ferry');
    assert.ok(isFerryError(e, 'ERR_EXPORT'));
    assert.match(e.message, /cannot write \/out\/x\.ferry: ENOSPC/);
    assert.match((blame(sysErr('EPIPE'), chain, '-') as Error).message, /cannot write stdout/);
  });
  it('ferry\'s own errors (a damaged or missing snapshot) pass through unchanged', () => {
    for (const code of ['ERR_SNAPSHOT_CORRUPT', 'ERR_NO_SNAPSHOT'] as const) {
      const err = new FerryError(code, 'x');
      assert.equal(blame(err, chain, '/out/x.ferry'), err);
    }
  });
});
