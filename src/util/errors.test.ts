import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errorJson, exitCodeOf, FerryError, httpStatusOf, InterruptedError, isFerryError } from './errors.js';

class SubError extends FerryError {
  override jsonFields(): Record<string, unknown> {
    return { extra: 42, absent: undefined };
  }
}

test('FerryError: instanceof, subclasses, isFerryError by code', () => {
  const e = new FerryError('ERR_NO_SNAPSHOT', 'x', { hint: 'h' });
  assert.ok(e instanceof FerryError && e instanceof Error);
  const thrown: unknown = e;
  assert.ok(isFerryError(thrown) && isFerryError(thrown, 'ERR_NO_SNAPSHOT') && !isFerryError(thrown, 'ERR_USAGE'));
  assert.ok(!(new Error('plain') instanceof FerryError));
  assert.ok(!isFerryError(Object.assign(new Error('y'), { code: 'ERR_NO_SNAPSHOT' })), 'a code alone does not make a FerryError');
  assert.ok(new SubError('ERR_USAGE', 's') instanceof SubError);
  assert.ok(new SubError('ERR_USAGE', 's') instanceof FerryError);
  assert.ok(!(e instanceof SubError));
});

test('exit status: 1 for a failure, 2 for usage, 128 + signal for an interruption, 1 for a bug', () => {
  assert.equal(exitCodeOf(new FerryError('ERR_NO_SNAPSHOT', 'x')), 1);
  assert.equal(exitCodeOf(new FerryError('ERR_USAGE', 'x')), 2);
  assert.equal(exitCodeOf(new FerryError('ERR_BAD_OPTION', 'x')), 2);
  assert.equal(exitCodeOf(new InterruptedError('SIGINT', 'x')), 130);
  assert.equal(exitCodeOf(new InterruptedError('SIGTERM', 'x')), 143);
  assert.equal(exitCodeOf(new InterruptedError('SIGHUP', 'x')), 129);
  assert.equal(exitCodeOf(new TypeError('bug')), 1);
  assert.equal(exitCodeOf('thrown string'), 1);
});

test('HTTP status by code; anything but a FerryError is a 500', () => {
  assert.equal(httpStatusOf(new FerryError('ERR_USAGE', 'x')), 400);
  assert.equal(httpStatusOf(new FerryError('ERR_NO_SNAPSHOT', 'x')), 404);
  assert.equal(httpStatusOf(new FerryError('ERR_ALREADY_RUNNING', 'x')), 409);
  assert.equal(httpStatusOf(new FerryError('ERR_SNAPSHOT_INCOMPATIBLE', 'x')), 422);
  assert.equal(httpStatusOf(new FerryError('ERR_CRIU_MISSING', 'x')), 503);
  assert.equal(httpStatusOf(new Error('bug')), 500);
});

test('errorJson: code, message, hint/detail only when set, subclass fields, cleanup errors', () => {
  assert.deepEqual(errorJson(new FerryError('ERR_NO_SNAPSHOT', 'no snapshot a')), { code: 'ERR_NO_SNAPSHOT', message: 'no snapshot a' });
  const e = new SubError('ERR_USAGE', 'm', { hint: 'h', detail: 'd' }).addCleanupError(new Error('rm failed'));
  assert.deepEqual(JSON.parse(JSON.stringify(errorJson(e))), { code: 'ERR_USAGE', message: 'm', hint: 'h', detail: 'd', extra: 42, cleanupErrors: ['rm failed'] });
  assert.deepEqual(errorJson(new InterruptedError('SIGTERM', 'stopped')), { code: 'ERR_INTERRUPTED', message: 'stopped', signal: 'SIGTERM' });
  assert.deepEqual(errorJson(new RangeError('oops')), { code: 'ERR_INTERNAL', message: 'oops' });
  assert.deepEqual(errorJson(7), { code: 'ERR_INTERNAL', message: '7' });
});
