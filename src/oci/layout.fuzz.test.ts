/**
 * The oci-archive reader on hostile input: mutated archives (bit flips, bytes set, truncation,
 * insertion, deletion) unpack, or fail with a FerryError that names the file, under a watchdog;
 * nothing is written outside the directory they unpack into. Inputs per property:
 * FERRY_FUZZ_RUNS (`make fuzz` runs 10,000).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import fc from 'fast-check';
import { decodesOrNames, fuzzParams, mutated } from '../testing/fuzz.js';
import { MEDIA, REF_NAME, sha256, unpackOciArchive, writeOciArchive } from './layout.js';

let dir: string;
let seed: Buffer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-oci-fuzz-'));
  const layer = Buffer.from('checkpoint/inventory.img'.repeat(40));
  const config = Buffer.from('{"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: MEDIA.config, digest: sha256(config), size: config.length }, layers: [{ mediaType: MEDIA.layerTar, digest: sha256(layer), size: layer.length }] }));
  await writeOciArchive(join(dir, 'seed.tar'), { schemaVersion: 2, manifests: [{ mediaType: MEDIA.manifest, digest: sha256(manifest), size: manifest.length, annotations: { [REF_NAME]: 'localhost/x:1' } }] },
    [{ digest: sha256(config), body: config }, { digest: sha256(layer), body: layer }, { digest: sha256(manifest), body: manifest }]);
  seed = await readFile(join(dir, 'seed.tar'));
});
after(async () => { await rm(dir, { recursive: true, force: true }); });

it('a mutated oci-archive unpacks, or is refused with a FerryError naming it; nothing lands outside its directory', async () => {
  let n = 0;
  await fc.assert(fc.asyncProperty(mutated(seed), async (bytes) => {
    const run = join(dir, `run-${n++}`);
    const file = `${run}.image.tar`;
    await writeFile(file, bytes);
    try {
      await decodesOrNames(() => unpackOciArchive(file, join(run, 'out')), `run-${n - 1}.image.tar`, { code: /^ERR_ARCHIVE_(INVALID|CORRUPT)$/ });
      assert.deepEqual((await readdir(run).catch(() => [])).filter((f) => f !== 'out'), [], 'written outside the unpack directory');
    } finally {
      await rm(run, { recursive: true, force: true });
      await rm(file, { force: true });
    }
  }), fuzzParams(150));
  assert.deepEqual((await readdir(dir)).sort(), ['seed.tar']);
});
