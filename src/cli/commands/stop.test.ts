import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isFerryError } from '../../util/errors.js';
import { parseTimeout } from './stop.js';

describe('stop --timeout', () => {
  it('reads seconds by default, ms, s, m; refuses junk and more than an hour', () => {
    assert.equal(parseTimeout('10'), 10_000);
    assert.equal(parseTimeout('500ms'), 500);
    assert.equal(parseTimeout('2.5s'), 2500);
    assert.equal(parseTimeout('2m'), 120_000);
    assert.equal(parseTimeout('0'), 0);
    for (const bad of ['', 'soon', '-1', '2h', '61m']) assert.throws(() => parseTimeout(bad), (e) => isFerryError(e, 'ERR_USAGE'), bad);
  });
});
