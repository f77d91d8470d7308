import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FerryError, isFerryError } from './errors.js';

class SubError extends FerryError {}

test('instanceof FerryError holds across copies of the module (the CLI bundle and tsc output)', () => {
  const e = new FerryError('ERR_X', 'x', { hint: 'h' });
  assert.ok(e instanceof FerryError && e instanceof Error);
  // An error made by another copy of the class carries the same registered brand.
  const other = Object.assign(new Error('y'), { code: 'ERR_Y' });
  Object.defineProperty(other, Symbol.for('ferry.FerryError'), { value: true });
  assert.ok(other instanceof FerryError);
  assert.ok(isFerryError(other, 'ERR_Y'));
  assert.ok(!(new Error('plain') instanceof FerryError));
  assert.ok(!((null as unknown as object) instanceof FerryError));
  // Subclasses keep ordinary instanceof.
  assert.ok(new SubError('ERR_S', 's') instanceof SubError);
  assert.ok(new SubError('ERR_S', 's') instanceof FerryError);
  assert.ok(!(e instanceof SubError));
});
