// The fuzz property itself can fail: a foreign exception, a hang, an error that names nothing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FerryError } from '../util/errors.js';
import { decodesOrNames } from './fuzz.js';

describe('fuzz helpers', () => {
  it('decodesOrNames accepts a result or a FerryError naming the file, and nothing else', async () => {
    await decodesOrNames(() => 1, 'f.img');
    await decodesOrNames(() => { throw new FerryError('ERR_IMAGE_FORMAT', 'CRIU image /x/f.img: bad'); }, '/x/f.img', { code: 'ERR_IMAGE_FORMAT' });
    await assert.rejects(decodesOrNames(() => { throw new TypeError('oops'); }, 'f.img'), /not a FerryError: TypeError: oops/);
    await assert.rejects(decodesOrNames(() => { throw new FerryError('ERR_IMAGE_FORMAT', 'bad'); }, 'f.img'), /does not name f\.img/);
    await assert.rejects(decodesOrNames(() => { throw new FerryError('ERR_IMAGE_FORMAT', 'f.img bad'); }, 'f.img', { code: 'ERR_SNAPSHOT_CORRUPT' }), /code ERR_IMAGE_FORMAT/);
    await assert.rejects(decodesOrNames(() => new Promise(() => undefined), 'f.img', { ms: 50 }), /did not finish within 50 ms \(hang\)/);
  });
});
