/**
 * Reads images CRIU produces during this test run: a Python workload (session leader, one
 * extra thread, one child process) fills an 8 MiB anonymous mapping with a known pattern and
 * is dumped with the raw CLI (`criu dump --leave-running`). Needs root and the CRIU binary.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveCriuBinary } from '../binary.js';
import { listImages } from './list.js';
import { readInventory } from './inventory.js';
import { PE_PRESENT, pagemapPath, pagesFileOffset, pagesPath, presentRuns, readPagemap, type Pagemap } from './pagemap.js';
import { readPstree } from './pstree.js';
import { readDumpStats, readRestoreStats } from './stats.js';
import { run, waitFor } from './inspect-workload.js';

const PAGES = 2048; // 8 MiB
const PAGE = 4096;

/** The content of page `i` of the workload's buffer; the workload builds the same bytes. */
function expectedPage(token: string, i: number): Buffer {
  return Buffer.from(`FERRY-${token}-PAGE-${String(i).padStart(8, '0')}-`.repeat(200)).subarray(0, PAGE);
}

const WORKLOAD = `
import ctypes, json, mmap, os, subprocess, sys, threading
ready, token, npages = sys.argv[1], sys.argv[2], int(sys.argv[3])
if os.getsid(0) != os.getpid():
    sys.exit('not a session leader')
m = mmap.mmap(-1, npages * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(npages):
    m[i * 4096:(i + 1) * 4096] = ((b'FERRY-%s-PAGE-%08d-' % (token.encode(), i)) * 200)[:4096]
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
stop = threading.Event()
threading.Thread(target=stop.wait, daemon=True).start()
child = subprocess.Popen(['sleep', '100000'], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with open(ready + '.tmp', 'w') as f:
    json.dump({'pid': os.getpid(), 'addr': addr, 'child': child.pid, 'tids': sorted(int(t) for t in os.listdir('/proc/self/task'))}, f)
os.rename(ready + '.tmp', ready)
stop.wait()
`;

interface Ready { pid: number; addr: number; child: number; tids: number[] }

void describe('images of a real CRIU dump', () => {
  let work: string;
  let images: string;
  let workload: ChildProcess | undefined;
  let exited = false;
  let ready: Ready;
  const token = `${process.pid}x${Date.now().toString(36)}`;

  /** Kills the workload's whole process group (it is a session and group leader). */
  const killWorkload = (): void => {
    const pid = workload?.pid;
    if (pid === undefined || exited) return;
    try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
  };
  process.on('exit', killWorkload); // last resort: never leak the workload

  before(async () => {
    const criu = resolveCriuBinary();
    assert.ok(criu, 'no CRIU binary found (run scripts/setup.sh or set FERRY_CRIU)');
    assert.equal(process.getuid?.(), 0, 'dumping needs root');
    work = await mkdtemp(join(tmpdir(), 'ferry-images-'));
    images = join(work, 'images');
    const readyFile = join(work, 'ready.json');

    workload = spawn('python3', ['-c', WORKLOAD, readyFile, token, String(PAGES)], {
      detached: true, stdio: 'ignore', cwd: work,
    });
    workload.on('exit', () => { exited = true; });
    ready = await waitFor('workload start', async () =>
      existsSync(readyFile) ? JSON.parse(await readFile(readyFile, 'utf8')) as Ready : undefined, 30_000, () => exited);
    assert.equal(ready.pid, workload.pid, 'python3 kept the spawned pid (session leader)');

    await mkdir(images);
    const res = await run(criu.path, ['dump', '-t', String(ready.pid), '-D', images, '--leave-running', '-o', 'dump.log', '-v4'], work);
    if (res.code !== 0) {
      const log = await readFile(join(images, 'dump.log'), 'utf8').catch(() => '');
      assert.fail(`criu dump exited ${res.code}: ${res.stderr}\n${log.split('\n').filter((l) => /Error|error/.test(l)).slice(-20).join('\n')}`);
    }
  });

  after(async () => {
    killWorkload();
    if (workload && !exited) await new Promise((r) => workload?.once('exit', r));
    process.off('exit', killWorkload);
    if (work) await rm(work, { recursive: true, force: true });
  });

  void it('left the workload running', () => {
    assert.equal(exited, false);
    process.kill(ready.pid, 0);
  });

  void it('stats-dump: CRIU counted the pages it wrote, with sane times', async () => {
    const stats = await readDumpStats(images);
    assert.ok(stats, 'stats-dump is missing');
    assert.ok(stats.pages_written >= PAGES, `pages_written ${stats.pages_written} < the workload's ${PAGES}`);
    assert.ok(stats.pages_scanned >= stats.pages_written);
    assert.equal(stats.pages_skipped_parent, 0, 'no parent snapshot');
    for (const t of ['freezing_time', 'frozen_time', 'memdump_time', 'memwrite_time'] as const) {
      assert.ok(Number.isInteger(stats[t]) && stats[t] >= 0 && stats[t] < 120e6, `${t} = ${stats[t]} µs`);
    }
    assert.ok(stats.frozen_time > 0);
    assert.ok(stats.frozen_time >= stats.memdump_time, 'memory is drained while frozen');
    assert.equal(await readRestoreStats(images), undefined, 'no restore happened');
  });

  void it('pstree: the root is the dumped pid with its threads, and the child hangs below it', async () => {
    const tree = await readPstree(images);
    assert.equal(tree.length, 2);
    const [root, child] = tree;
    assert.ok(root && child);
    assert.equal(root.pid, ready.pid);
    assert.equal(root.ppid, 0);
    assert.equal(root.sid, ready.pid);
    assert.equal(root.pgid, ready.pid);
    assert.deepEqual([...root.threads].sort((a, b) => a - b), ready.tids);
    assert.equal(ready.tids.length, 2);
    assert.deepEqual(child, { pid: ready.child, ppid: ready.pid, pgid: ready.pid, sid: ready.pid, threads: [ready.child] });
  });

  void it('inventory: image version 2 and the root task ids', async () => {
    const inv = await readInventory(images);
    assert.ok(inv);
    assert.equal(inv.img_version, 2);
    assert.ok(inv.root_ids, 'root_ids');
    assert.ok(inv.root_ids.vm_id > 0 && inv.root_ids.files_id > 0);
    assert.equal(inv.fdinfo_per_id, true);
    assert.match(inv.dump_criu_run_id ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.equal(inv.lsmtype !== undefined, true);
  });

  async function pagemaps(): Promise<Map<number, Pagemap>> {
    const out = new Map<number, Pagemap>();
    for (const pid of [ready.pid, ready.child]) out.set(pid, await readPagemap(pagemapPath(images, pid)));
    return out;
  }

  void it('pagemaps: present pages x 4096 is exactly the pages file size, and pages_written in total', async () => {
    const stats = await readDumpStats(images);
    let totalPresent = 0;
    const seenIds = new Set<number>();
    for (const [pid, pm] of await pagemaps()) {
      assert.ok(!seenIds.has(pm.pagesId), 'each pagemap has its own pages file');
      seenIds.add(pm.pagesId);
      const present = pm.entries.filter((e) => (e.flags & PE_PRESENT) !== 0).reduce((n, e) => n + e.nrPages, 0);
      assert.ok(present > 0, `pid ${pid} has present pages`);
      const { totalBytes } = presentRuns(pm.entries);
      assert.equal(totalBytes, present * PAGE);
      assert.equal((await stat(pagesPath(images, pm.pagesId))).size, totalBytes, `pages-${pm.pagesId}.img size`);
      for (const e of pm.entries) assert.ok(e.nrPages > 0 && e.vaddr % BigInt(PAGE) === 0n);
      totalPresent += present;
    }
    assert.equal(totalPresent, stats?.pages_written);
  });

  void it('pages file: every page of the 8 MiB buffer is at the offset computed for its vaddr', async () => {
    const pm = (await pagemaps()).get(ready.pid);
    assert.ok(pm);
    const pages = await readFile(pagesPath(images, pm.pagesId));
    const base = BigInt(ready.addr);
    assert.equal(base % BigInt(PAGE), 0n);
    for (let i = 0; i < PAGES; i++) {
      const offset = pagesFileOffset(pm.entries, base + BigInt(i * PAGE));
      assert.notEqual(offset, undefined, `page ${i} of the buffer is not in a present run`);
      const got = pages.subarray(offset, (offset ?? 0) + PAGE);
      if (!got.equals(expectedPage(token, i))) {
        assert.fail(`page ${i} at offset ${offset}: found ${JSON.stringify(got.subarray(0, 40).toString('latin1'))}`);
      }
    }
    // And the pattern is not found where it should not be: the page before the buffer.
    const before = pagesFileOffset(pm.entries, base - BigInt(PAGE));
    if (before !== undefined) assert.ok(!pages.subarray(before, before + PAGE).equals(expectedPage(token, 0)));
  });

  void it('listImages names each file with its kind', async () => {
    const [root] = await readPstree(images);
    const pm = await readPagemap(pagemapPath(images, ready.pid));
    const list = await listImages(images);
    const kinds = new Map(list.map((f) => [f.name, f]));
    assert.equal(kinds.get('inventory.img')?.kind, 'inventory');
    assert.equal(kinds.get('pstree.img')?.kind, 'pstree');
    assert.equal(kinds.get('stats-dump')?.kind, 'stats-dump');
    assert.deepEqual(kinds.get(`pagemap-${root?.pid}.img`)?.kind, 'pagemap');
    assert.equal(kinds.get(`pagemap-${root?.pid}.img`)?.id, String(root?.pid));
    assert.equal(kinds.get(`pages-${pm.pagesId}.img`)?.kind, 'pages');
    assert.equal(kinds.get(`core-${ready.tids[1]}.img`)?.kind, 'core', 'one core image per thread');
    assert.equal(kinds.get(`mm-${ready.pid}.img`)?.kind, 'mm');
    assert.equal(kinds.has('dump.log'), false);
    const onDisk = (await readdir(images)).filter((n) => n.endsWith('.img') || n.startsWith('stats-')).sort();
    assert.deepEqual(list.map((f) => f.name), onDisk, 'every image file is listed, nothing else');
  });
});
