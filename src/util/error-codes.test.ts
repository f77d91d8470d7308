// The catalog is complete: every 'ERR_…' literal in the sources (thrown, matched or asserted on)
// is a code of ERROR_CODES, every entry says what it means and how each boundary reports it, and
// README's "Errors and exit codes" table says the same as the catalog.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, isErrorCode } from './error-codes.js';

/** The project root (two levels above dist/util or src/util). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function* sourceFiles(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* sourceFiles(p);
    else if (/\.(?:ts|mjs|js)$/.test(e.name)) yield p;
  }
}

test('every ERR_ code literal in src/ is in the catalog', () => {
  const unknown: string[] = [];
  let seen = 0;
  for (const file of sourceFiles(join(ROOT, 'src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/(['"`])(ERR_[A-Z0-9_]+)\1/g)) {
      seen++;
      const code = m[2] ?? '';
      if (!isErrorCode(code)) unknown.push(`${relative(ROOT, file)}: ${code}`);
    }
  }
  assert.ok(seen > 100, `the scan found only ${seen} code literals; is ${join(ROOT, 'src')} the source tree?`);
  assert.deepEqual(unknown, [], 'codes missing from src/util/error-codes.ts');
});

test('every catalog entry has a meaning, an exit status and an HTTP status', () => {
  for (const [code, info] of Object.entries(ERROR_CODES)) {
    assert.match(code, /^ERR_[A-Z0-9_]+$/);
    assert.ok(info.meaning.length > 10 && !info.meaning.includes('\n'), `${code}: meaning is one line`);
    assert.ok(Number.isInteger(info.exit) && info.exit >= 1 && info.exit <= 255, `${code}: exit ${info.exit}`);
    assert.ok(Number.isInteger(info.http) && info.http >= 400 && info.http <= 599, `${code}: HTTP ${info.http}`);
  }
  assert.equal(ERROR_CODES.ERR_USAGE.exit, 2);
  assert.equal(ERROR_CODES.ERR_INTERRUPTED.exit, 130);
});

test('README documents the catalog as it is', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## Errors and exit codes$/m)[1]?.split(/^## /m)[0];
  assert.ok(section, 'README.md has a "## Errors and exit codes" section');
  const rows = new Map<string, string>();
  for (const m of section.matchAll(/^\| `(ERR_[A-Z0-9_]+)` \| (.*) \| (\d+) \| (\d+) \|$/gm)) rows.set(m[1] ?? '', `${m[2]} | ${m[3]} | ${m[4]}`);
  const want = new Map(Object.entries(ERROR_CODES).map(([code, i]) => [code, `${i.meaning} | ${i.exit} | ${i.http}`]));
  assert.deepEqual(rows, want, 'regenerate the table: node dist/util/error-table.js');
});
