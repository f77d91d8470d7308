/**
 * inspectImages on images CRIU produces during this test run: a Python workload (session
 * leader, known argv longer than a page, one extra thread, one child with its own argv)
 * holding a regular file, a TCP listener with an established connection to itself, a unix
 * socketpair, a pipe and a filled 4 MiB anonymous mapping, dumped with the raw CLI
 * (`criu dump --leave-running --tcp-established`). Needs root and the CRIU binary.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveCriuBinary } from '../binary.js';
import { inspectImages, type FdSummary, type ImageSummary } from './inspect.js';
import { ARGS, CHILD_CODE, MAP_BYTES, WORKLOAD, cmdline, run, waitFor, type Ready } from './inspect-workload.js';
import { readMm } from './mm.js';

void describe('inspectImages on a real CRIU dump', () => {
  let work: string;
  let images: string;
  let python: string;
  let workload: ChildProcess | undefined;
  let exited = false;
  let ready: Ready;
  let summary: ImageSummary;
  const live: { root?: string[]; child?: string[]; comm?: string } = {};

  /** Kills the workload's process group (it leads it), and its child by pid. */
  const killWorkload = (): void => {
    const pid = workload?.pid;
    if (pid === undefined || exited) return;
    try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
    try { if (ready !== undefined) process.kill(ready.child, 'SIGKILL'); } catch { /* already gone */ }
  };
  process.on('exit', killWorkload); // last resort: never leak the workload

  before(async () => {
    const criu = resolveCriuBinary();
    assert.ok(criu, 'no CRIU binary found (run scripts/setup.sh or set FERRY_CRIU)');
    assert.equal(process.getuid?.(), 0, 'dumping needs root');
    work = await realpath(await mkdtemp(join(tmpdir(), 'ferry-inspect-')));
    images = join(work, 'images');
    // The real interpreter, so that argv[0] is what we pass (a pyenv shim would re-exec).
    const found = await run('python3', ['-c', 'import sys; print(sys.executable)'], work);
    python = found.stdout.trim();
    assert.ok(python.startsWith('/'), `python3 not found: ${found.stderr}`);

    workload = spawn(python, ['-c', WORKLOAD, ...ARGS], { detached: true, stdio: 'ignore', cwd: work });
    workload.on('exit', () => { exited = true; });
    const readyFile = join(work, 'ready.json');
    ready = await waitFor('workload start', async () =>
      existsSync(readyFile) ? JSON.parse(await readFile(readyFile, 'utf8')) as Ready : undefined, 30_000, () => exited);
    assert.equal(ready.pid, workload.pid, 'python3 kept the spawned pid (session leader)');
    live.root = await cmdline(ready.pid);
    live.child = await cmdline(ready.child);
    live.comm = (await readFile(`/proc/${ready.pid}/comm`, 'utf8')).trim();

    await mkdir(images);
    const res = await run(criu.path, ['dump', '-t', String(ready.pid), '-D', images, '--leave-running',
      '-v4', '-o', 'dump.log', '--tcp-established'], work);
    if (res.code !== 0) {
      const log = await readFile(join(images, 'dump.log'), 'utf8').catch(() => '');
      assert.fail(`criu dump exited ${res.code}: ${res.stderr}\n${log.split('\n').filter((l) => /Error/.test(l)).slice(-20).join('\n')}`);
    }
    summary = await inspectImages(images);
  });

  after(async () => {
    killWorkload();
    if (workload && !exited) await new Promise((r) => workload?.once('exit', r));
    process.off('exit', killWorkload);
    if (work) await rm(work, { recursive: true, force: true });
  });

  const fdsOf = (pid: number): FdSummary[] => summary.files.find((t) => t.pids.includes(pid))?.fds ?? [];
  const fd = (n: number): FdSummary => {
    const found = fdsOf(ready.pid).find((f) => f.fd === n);
    assert.ok(found, `fd ${n} of the workload is in the summary`);
    return found;
  };

  void it('recovers both command lines from memory, exactly, across pages', async () => {
    const mm = await readMm(images, ready.pid);
    assert.ok(mm && mm.arg_end - mm.arg_start > 4096n, 'the arguments span more than a page');
    const [root, child] = summary.processes;
    assert.ok(root && child);
    assert.deepEqual(root.commandLine, [python, '-c', WORKLOAD, ...ARGS]);
    assert.deepEqual(root.commandLine, live.root);
    assert.equal(root.commandLineSource, 'memory');
    assert.deepEqual(child.commandLine, [ready.exe, '-c', CHILD_CODE, 'child-arg']);
    assert.deepEqual(child.commandLine, live.child);
    assert.ok(root.environment?.includes('PATH'), 'environment names');
    assert.ok(!root.environment?.some((v) => v.includes('=')), 'names only, no values');
  });

  void it('joins the process tree with core: ids, threads, comm, state, creds', () => {
    const [root, child] = summary.processes;
    assert.ok(root && child);
    assert.deepEqual([root.pid, root.ppid, root.pgid, root.sid], [ready.pid, 0, ready.pid, ready.pid]);
    assert.deepEqual([...root.threads].sort((a, b) => a - b), ready.tids);
    assert.equal(ready.tids.length, 2);
    assert.deepEqual([child.pid, child.ppid, child.pgid, child.sid, child.threads], [ready.child, ready.pid, ready.pid, ready.pid, [ready.child]]);
    assert.equal(root.comm, live.comm);
    assert.equal(root.state, 'alive');
    assert.deepEqual([root.uid, root.gid, root.euid, root.egid], [0, 0, 0, 0]);
    assert.match(root.exe ?? '', /python/);
    assert.deepEqual(summary.warnings, []);
  });

  void it('describes the regular file, the TCP sockets, the unix socketpair and the pipe by fd', () => {
    assert.deepEqual(fd(ready.fds.file).type, 'reg');
    assert.ok(fd(ready.fds.file).description.startsWith(`${join(work, 'data.txt')} (O_RDWR, pos 5`), fd(ready.fds.file).description);
    assert.deepEqual(fd(ready.fds.listen), { fd: ready.fds.listen, type: 'inet', description: `tcp 127.0.0.1:${ready.port} LISTEN`, fileId: fd(ready.fds.listen).fileId });
    const [local, remote] = [`127.0.0.1:${ready.cport}`, `127.0.0.1:${ready.port}`];
    assert.equal(fd(ready.fds.client).description, `tcp ${local} -> ${remote} ESTABLISHED`);
    assert.equal(fd(ready.fds.server).description, `tcp ${remote} -> ${local} ESTABLISHED`);
    const unix = ready.fds.unix.map((n) => /^unix stream \(unnamed\) ESTABLISHED ino (\d+) peer (\d+)$/.exec(fd(n).description));
    assert.ok(unix[0] && unix[1], JSON.stringify(ready.fds.unix.map((n) => fd(n))));
    assert.deepEqual([unix[0][1], unix[0][2]], [unix[1][2], unix[1][1]], 'each end is the peer of the other');
    const pipe = ready.fds.pipe.map((n) => /^pipe:\[(\d+)\] (read|write) end$/.exec(fd(n).description));
    assert.ok(pipe[0] && pipe[1]);
    assert.deepEqual([pipe[0][2], pipe[1][2]], ['read', 'write']);
    assert.equal(pipe[0][1], pipe[1][1], 'both ends of one pipe');
    assert.ok(!fdsOf(ready.child).some((f) => f.type === 'inet'), 'the child closed the inherited sockets');
  });

  void it('summarises sockets: the listener, the established pair with its dumped streams', () => {
    const s = summary.sockets;
    assert.equal(s.counts['tcp'], 3);
    assert.equal(s.counts['unix'], 2);
    assert.deepEqual(s.listening, [{ proto: 'tcp', local: `127.0.0.1:${ready.port}`, pids: [ready.pid] }]);
    assert.deepEqual(new Set(s.established.map((e) => `${e.local}>${e.remote}:${e.streamDumped}`)),
      new Set([`127.0.0.1:${ready.cport}>127.0.0.1:${ready.port}:true`, `127.0.0.1:${ready.port}>127.0.0.1:${ready.cport}:true`]));
    assert.equal(s.tcpStreamImages, 2);
  });

  void it('finds the 4 MiB anonymous mapping among the largest, and memory totals cover it', () => {
    const mem = summary.memory.find((m) => m.pid === ready.pid);
    assert.ok(mem);
    const addr = BigInt(ready.addr);
    const map = mem.largestMappings.find((m) => BigInt(m.start) <= addr && addr + BigInt(MAP_BYTES) <= BigInt(m.end));
    assert.ok(map, `no mapping covers 0x${addr.toString(16)}: ${JSON.stringify(mem.largestMappings)}`);
    assert.ok(map.size >= MAP_BYTES && map.prot === 'rw-');
    assert.ok(map.flags.includes('private') && map.flags.includes('anon'), map.flags.join(','));
    for (const k of ['mappedBytes', 'anonPrivateBytes'] as const) assert.ok(mem[k] >= MAP_BYTES, `${k} ${mem[k]}`);
    assert.ok(mem.fileBytes > 0 && mem.stackBytes > 0 && mem.mappedBytes >= mem.anonPrivateBytes + mem.fileBytes);
    assert.ok((mem.pages?.presentBytes ?? 0) >= MAP_BYTES);
    assert.deepEqual([mem.pages?.lazy, mem.pages?.inParent], [0, 0]);
    assert.ok(mem.largestMappings.some((m) => m.flags.includes('file') && m.file?.startsWith('/')), 'file mappings name their file');
  });

  void it('lists namespace ids, inventory facts, stats and image sizes', async () => {
    const ns = summary.namespaces;
    assert.deepEqual(ns.tasks.map((t) => t.pid), [ready.pid, ready.child]);
    for (const t of ns.tasks) assert.deepEqual(t.ids, ns.root, 'a host process: the tree shares the root namespaces');
    assert.ok(ns.root?.net !== undefined && ns.root.mnt !== undefined && ns.root.pid !== undefined);
    assert.deepEqual(ns.own, []);
    assert.equal(ns.timeNamespaceOnRestore, existsSync(join(images, 'timens-0.img')));
    const c = summary.criu;
    assert.equal(c.img_version, 2);
    assert.equal(c.arch, 'x86_64');
    assert.ok(['iptables', 'nftables', 'skip'].includes(c.network_lock_method ?? ''), String(c.network_lock_method));
    assert.ok((c.stats_dump?.pages_written ?? 0) >= MAP_BYTES / 4096);
    const names = (await readdir(images)).filter((n) => n.endsWith('.img') || n.startsWith('stats-'));
    const sizes = await Promise.all(names.map(async (n) => (await stat(join(images, n))).size));
    assert.equal(summary.images.files, names.length);
    assert.equal(summary.images.totalBytes, sizes.reduce((a, b) => a + b, 0));
    assert.equal(summary.images.byKind['core']?.files, 3, 'two threads and the child');
    assert.ok((summary.images.byKind['pages']?.bytes ?? 0) >= MAP_BYTES);
  });

  void it('is plain JSON: a stringify round trip gives the same object', () => {
    const text = JSON.stringify(summary);
    assert.deepEqual(JSON.parse(text), summary);
  });
});
