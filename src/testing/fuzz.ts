/**
 * Helpers of the property-based fuzz tests (*.fuzz.test.ts, fast-check): how many inputs per
 * property (FERRY_FUZZ_RUNS: a few hundred in `make test`, 10,000 in `make fuzz`), a watchdog
 * per decode, byte-level mutations of a valid input, and the one property every decoder of
 * outside bytes must have: it decodes, or fails with a FerryError that names the file.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isFerryError } from '../util/errors.js';

/** Inputs per property: FERRY_FUZZ_RUNS, else `fallback`. */
export function fuzzRuns(fallback = 200): number {
  const n = Number(process.env['FERRY_FUZZ_RUNS']);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

/** fast-check's parameters for a property run: the count, and a seed from FERRY_FUZZ_SEED to replay one. */
export function fuzzParams(fallback = 200): { numRuns: number; seed?: number; endOnFailure: true } {
  const seed = Number(process.env['FERRY_FUZZ_SEED']);
  return { numRuns: fuzzRuns(fallback), endOnFailure: true, ...(Number.isInteger(seed) ? { seed } : {}) };
}

/** `p`, or a rejection when it takes longer than `ms` (a hang is a failure, not a stuck test). */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const watchdog = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms (hang)`)), ms);
  });
  try {
    return await Promise.race([p, watchdog]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `decode` under a watchdog: it must resolve, or reject with a FerryError (of `code`, when
 * given) whose message contains `names`. Anything else fails the property with what happened.
 */
export async function decodesOrNames(decode: () => unknown, names: string, opts: { code?: string | RegExp; ms?: number } = {}): Promise<void> {
  try {
    await withTimeout(Promise.resolve().then(decode), opts.ms ?? 5000, `decoding ${names}`);
  } catch (err) {
    assert.ok(isFerryError(err), `not a FerryError: ${err instanceof Error ? err.stack : String(err)}`);
    if (opts.code !== undefined) {
      assert.ok(typeof opts.code === 'string' ? err.code === opts.code : opts.code.test(err.code), `code ${err.code}: ${err.message}`);
    }
    assert.ok(err.message.includes(names), `the message does not name ${names}: ${err.message}`);
  }
}

/** One edit of a byte string. */
type Edit =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'u32'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; len: number };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.constantFrom(0, 0x7f, 0x80, 0xff, 1) }),
  fc.record({ op: fc.constant('u32' as const), at: fc.nat(), value: fc.constantFrom(0, 1, 0x7fffffff, 0xffffffff, 0x10000, 4096) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 16 }) }),
);

function apply(b: Uint8Array, e: Edit): Uint8Array {
  const at = b.length === 0 ? 0 : e.at % (b.length + (e.op === 'insert' || e.op === 'truncate' ? 1 : 0));
  const out = Buffer.from(b);
  switch (e.op) {
    case 'flip': if (out.length) out[at] = out[at]! ^ (1 << e.bit); return out;
    case 'set': if (out.length) out[at] = e.value; return out;
    case 'u32': if (out.length >= 4) out.writeUInt32LE(e.value, Math.min(at, out.length - 4)); return out;
    case 'truncate': return out.subarray(0, at);
    case 'insert': return Buffer.concat([out.subarray(0, at), e.bytes, out.subarray(at)]);
    case 'delete': return Buffer.concat([out.subarray(0, at), out.subarray(at + e.len)]);
  }
}

/** `seed` with one to `max` random edits (bit flips, bytes and u32s set, truncation, insertion, deletion). */
export function mutated(seed: Uint8Array, max = 4): fc.Arbitrary<Uint8Array> {
  return fc.array(edit, { minLength: 1, maxLength: max }).map((edits) => edits.reduce(apply, seed));
}
