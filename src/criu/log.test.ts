import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatLogLines, summarizeLog } from './log.js';

const LOG = [
  '(00.000000) CRIU run id = x',
  '(00.000106) Version: 4.2.1 (gitid 0)',
  '(00.035905) Error (criu/util.c:1534): rlimit: Can\'t setup RLIMIT_NOFILE for self: Operation not permitted',
  ...Array.from({ length: 20 }, (_, i) => `(00.04${String(i).padStart(4, '0')}) line ${i}`),
  '(00.048770) Error (compel/src/lib/infect.c:417): Unable to detach from 999999: No such process',
  '(00.048777) Error (criu/cr-dump.c:1975): Dumping FAILED.',
  '',
].join('\n');

describe('CRIU log summary', () => {
  it('skips the harmless rlimit error and finds the first real one', () => {
    const s = summarizeLog(LOG);
    assert.equal(s.firstError, 'Unable to detach from 999999: No such process');
    assert.equal(s.firstErrorAt, 'compel/src/lib/infect.c:417');
    assert.equal(s.lineCount, 25);
  });

  it('numbers the excerpt with the log\'s own line numbers, around the error', () => {
    const s = summarizeLog(LOG, { before: 2, after: 1 });
    assert.deepEqual(s.excerpt.map((l) => l.n), [22, 23, 24, 25]);
    assert.match(s.excerpt[2]!.text, /Unable to detach/);
    assert.equal(formatLogLines(s.excerpt.slice(0, 1)), '22 | (00.040018) line 18');
  });

  it('the tail does not repeat the excerpt', () => {
    const s = summarizeLog(LOG, { before: 2, after: 1, tailLines: 5 });
    assert.deepEqual(s.tail, []);
    const t = summarizeLog(LOG, { before: 2, after: 0, tailLines: 5 });
    assert.deepEqual(t.tail.map((l) => l.n), [25]);
  });

  it('a log without errors has no first error and an empty excerpt, but a tail', () => {
    const s = summarizeLog('(00.1) a\n(00.2) b\n');
    assert.equal(s.firstError, undefined);
    assert.deepEqual(s.excerpt, []);
    assert.equal(s.tail.length, 2);
  });

  it('reads pid-prefixed lines too', () => {
    const s = summarizeLog('(00.1) 1234: Error (criu/x.c:1): boom\n');
    assert.equal(s.firstError, 'boom');
  });
});
