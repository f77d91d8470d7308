import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { withTempDir } from '../testing/processes.js';
import { isFerryError } from '../util/errors.js';
import { defaultReserveBytes, memoryTierUsage, parseSize, placeSnapshot, readStoreConfig, resolveBudget, storedBytes } from './budget.js';
import { Store } from './store.js';

const MiB = 2 ** 20;

describe('memory tier budget', () => {
  it('parseSize: bytes, binary and decimal units; rejects nonsense', () => {
    assert.equal(parseSize('1000'), 1000);
    assert.equal(parseSize('512M'), 512 * MiB);
    assert.equal(parseSize('1.5GiB'), 1.5 * 2 ** 30);
    assert.equal(parseSize('2g'), 2 * 2 ** 30);
    assert.equal(parseSize('500MB'), 500e6);
    for (const bad of ['', 'lots', '-1', '1X', '1 G B']) {
      assert.throws(() => parseSize(bad), (e) => isFerryError(e, 'ERR_USAGE') && /is not a size/.test(e.message), bad);
    }
  });

  it('config.json: read, validated; a malformed one is an error naming the file', async () => {
    await withTempDir('budget', async (root) => {
      assert.deepEqual(await readStoreConfig(root), {});
      await writeFile(join(root, 'config.json'), JSON.stringify({ memoryBudgetBytes: 1234, spillToDisk: true }));
      assert.deepEqual(await readStoreConfig(root), { memoryBudgetBytes: 1234, spillToDisk: true });
      await writeFile(join(root, 'config.json'), JSON.stringify({ memoryBudgetBytes: '64M' }));
      assert.deepEqual(await readStoreConfig(root), { memoryBudgetBytes: 64 * MiB });
      for (const bad of ['{not json', '[]', '{"memoryBudgetBytes": -5}', '{"spillToDisk": "yes"}']) {
        await writeFile(join(root, 'config.json'), bad);
        await assert.rejects(readStoreConfig(root), (e) => isFerryError(e, 'ERR_STORE_CONFIG') && e.message.includes(join(root, 'config.json')), bad);
      }
    });
  });

  it('precedence: option, then FERRY_MEMORY_BUDGET, then config.json', async () => {
    await withTempDir('budget', async (root) => {
      await writeFile(join(root, 'config.json'), JSON.stringify({ memoryBudgetBytes: 100, spillToDisk: true }));
      assert.deepEqual(await resolveBudget(root, {}, {}), { budgetBytes: 100, spillToDisk: true, source: 'config' });
      assert.deepEqual(await resolveBudget(root, {}, { FERRY_MEMORY_BUDGET: '1k', FERRY_SPILL_TO_DISK: '0' }), { budgetBytes: 1024, spillToDisk: false, source: 'env' });
      assert.deepEqual(await resolveBudget(root, { memoryBudgetBytes: 7, spillToDisk: false }, { FERRY_MEMORY_BUDGET: '1k' }), { budgetBytes: 7, spillToDisk: false, source: 'option' });
      await assert.rejects(resolveBudget(root, {}, { FERRY_SPILL_TO_DISK: 'maybe' }), (e) => isFerryError(e, 'ERR_USAGE'));
    });
  });

  it('usage counts what the memory tier occupies, in-flight snapshots included, removals not', async () => {
    await withTempDir('budget', async (root) => {
      const mem = join(root, 'mem');
      const store = new Store({ root, memoryDir: mem });
      assert.equal(await memoryTierUsage(store), 0, 'no memory tier yet');
      await mkdir(join(mem, 'a'), { recursive: true });
      await mkdir(join(mem, '.tmp-b'));
      await mkdir(join(mem, '.rm-c-1'));
      await writeFile(join(mem, 'a', 'pages-1.img'), Buffer.alloc(MiB, 1));
      await writeFile(join(mem, '.tmp-b', 'pages-1.img'), Buffer.alloc(MiB, 2));
      await writeFile(join(mem, '.rm-c-1', 'pages-1.img'), Buffer.alloc(4 * MiB, 3));
      assert.equal(await storedBytes(join(mem, 'a')), MiB);
      const used = await memoryTierUsage(store);
      assert.ok(used >= 2 * MiB && used < 3 * MiB, `used ${used}`);
    });
  });

  it('placement: disk stays disk; memory stays within budget, spills when allowed, else refuses with numbers and remedies', async () => {
    await withTempDir('budget', async (root) => {
      const mem = join(root, 'mem');
      const store = new Store({ root, memoryDir: mem });
      await mkdir(join(mem, 'old'), { recursive: true });
      await writeFile(join(mem, 'old', 'pages-1.img'), Buffer.alloc(3 * MiB, 1));
      const prev = process.env['FERRY_MEMORY_BUDGET'];
      delete process.env['FERRY_MEMORY_BUDGET'];
      try {
        assert.equal((await placeSnapshot(store, 'disk', 100 * MiB, { memoryBudgetBytes: MiB })).tier, 'disk');
        assert.equal((await placeSnapshot(store, 'memory', 100 * MiB)).tier, 'memory', 'no budget, no limit');
        const fits = await placeSnapshot(store, 'memory', MiB, { memoryBudgetBytes: 8 * MiB });
        assert.deepEqual([fits.tier, fits.spilled], ['memory', false]);
        const spill = await placeSnapshot(store, 'memory', 6 * MiB, { memoryBudgetBytes: 8 * MiB, spillToDisk: true });
        assert.deepEqual([spill.tier, spill.spilled], ['disk', true]);
        assert.match(spill.reason ?? '', /budget of 8\.0 MiB .*3\.0 MiB in use \+ about 6\.0 MiB/);
        await assert.rejects(placeSnapshot(store, 'memory', 6 * MiB, { memoryBudgetBytes: 8 * MiB }), (e) => {
          assert.ok(isFerryError(e, 'ERR_MEMORY_BUDGET'));
          assert.match(e.message, /budget of 8\.0 MiB \(--memory-budget\) would be exceeded: 3\.0 MiB in use \+ about 6\.0 MiB/);
          for (const remedy of ['snapshots gc', 'snapshots rm', '--memory-budget', '--tier disk', '--spill-to-disk']) assert.ok(e.hint?.includes(remedy), remedy);
          return true;
        });
      } finally {
        if (prev !== undefined) process.env['FERRY_MEMORY_BUDGET'] = prev;
      }
    });
  });

  it('placement counts the host: MemAvailable less the reserve, and the tmpfs\'s free space; spills or refuses with the numbers', async () => {
    await withTempDir('budget', async (root) => {
      const store = new Store({ root, memoryDir: join(root, 'mem') });
      const host = { availableBytes: 1024 * MiB, totalBytes: 4096 * MiB, tmpfsFreeBytes: 2048 * MiB };
      const prev = { b: process.env['FERRY_MEMORY_BUDGET'], r: process.env['FERRY_MEMORY_RESERVE'] };
      delete process.env['FERRY_MEMORY_BUDGET'];
      delete process.env['FERRY_MEMORY_RESERVE'];
      try {
        assert.equal(defaultReserveBytes(4096 * MiB), 256 * MiB, 'at least 256 MiB');
        assert.equal(defaultReserveBytes(24 * 1024 * MiB), Math.floor(24 * 1024 * MiB * 0.05), '5 % of a large host');
        const ok = await placeSnapshot(store, 'memory', 700 * MiB, {}, host);
        assert.deepEqual([ok.tier, ok.host?.reserveBytes], ['memory', 256 * MiB]);
        // 1 GiB asked, 1 GiB available: the host would run out (the 1 GiB dump of the bug report).
        await assert.rejects(placeSnapshot(store, 'memory', 1024 * MiB, {}, host), (e) => {
          assert.ok(isFerryError(e, 'ERR_HOST_MEMORY'), String(e));
          assert.match(e.message, /1\.0 GiB of memory available; .* about 1\.0 GiB would leave less than the reserve of 256\.0 MiB/);
          assert.match(e.detail ?? '', /MemAvailable 1073741824 bytes, reserve 268435456 bytes/);
          return true;
        });
        const spill = await placeSnapshot(store, 'memory', 1024 * MiB, { spillToDisk: true }, host);
        assert.deepEqual([spill.tier, spill.spilled], ['disk', true]);
        // The reserve: option, FERRY_MEMORY_RESERVE, config.json.
        assert.equal((await placeSnapshot(store, 'memory', 1000 * MiB, { memoryReserveBytes: 0 }, host)).tier, 'memory');
        process.env['FERRY_MEMORY_RESERVE'] = '900M';
        await assert.rejects(placeSnapshot(store, 'memory', 200 * MiB, {}, host), (e) => isFerryError(e, 'ERR_HOST_MEMORY'));
        delete process.env['FERRY_MEMORY_RESERVE'];
        await writeFile(join(root, 'config.json'), JSON.stringify({ memoryReserveBytes: '10M' }));
        assert.equal((await placeSnapshot(store, 'memory', 1000 * MiB, {}, host)).host?.reserveBytes, 10 * MiB);
        // A full tmpfs refuses even with memory to spare.
        await assert.rejects(placeSnapshot(store, 'memory', 100 * MiB, {}, { ...host, tmpfsFreeBytes: 50 * MiB }), (e) =>
          isFerryError(e, 'ERR_STORE_FULL') && /memory tier has 50 MiB free on its file system; this snapshot needs about 100\.0 MiB/.test(e.message));
      } finally {
        for (const [k, v] of [['FERRY_MEMORY_BUDGET', prev.b], ['FERRY_MEMORY_RESERVE', prev.r]] as const) if (v !== undefined) process.env[k] = v;
      }
    });
  });
});
