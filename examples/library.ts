/**
 * ferry as a library: checkpoint a running process, restore it, check that it goes on where it
 * stopped, export the snapshot and import it back, list and remove, clean up. Runs as root, with CRIU >= 4.2 ($FERRY_CRIU, or `criu` on $PATH).
 *   node library.js STORE_DIR
 * (src/library.e2e.test.ts installs the packed package and type-checks and runs this very file.)
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createEngine, isFerryError, type CheckpointResult, type RestoreResult } from 'ferry';

const storeDir = process.argv[2];
if (storeDir === undefined) throw new Error('usage: node library.js STORE_DIR');
const counterFile = join(storeDir, 'counter');
const readCounter = async () => Number(await readFile(counterFile, 'utf8'));

// The workload: a Node.js program counting in its own session (CRIU takes a session leader
// and its children; `detached` makes it one), writing each value to a file (atomically).
const counter = `const fs = require('node:fs'), f = ${JSON.stringify(counterFile)}; let i = 0;
  setInterval(() => { fs.writeFileSync(f + '.new', String(++i)); fs.renameSync(f + '.new', f); }, 20);`;
const child = spawn(process.execPath, ['-e', counter], { detached: true, stdio: 'ignore' });
await once(child, 'spawn');
const pid = child.pid;
if (pid === undefined) throw new Error('the workload did not start');
const exited = once(child, 'exit');

const engine = createEngine({ store: storeDir });
let restored: RestoreResult | undefined;
try {
  await sleep(500);
  // The checkpoint stops the workload: its state now lives in the snapshot.
  const cp: CheckpointResult = await engine.checkpoint({ target: pid, name: 'counter' });
  const before = await readCounter();
  await exited; // (the original is reaped, so its pid is free again)
  console.log(`checkpointed pid ${pid} at ${before} into ${cp.snapshot} (${cp.manifest.bytes} bytes)`);

  restored = await engine.restore({ snapshot: cp.snapshot });
  await sleep(200);
  process.kill(restored.pid, 0); // throws unless the restored process runs
  const after = await readCounter();
  // A restored counter goes on from its last value; a fresh one would start again at 1.
  if (!(after > before)) throw new Error(`the counter went from ${before} to ${after}: not restored`);
  console.log(`restored ${cp.snapshot} as pid ${restored.pid}; the counter went on from ${before} to ${after}`);

  // A snapshot travels as one archive (tar + zstd): export it, and import it back as a copy.
  const archive = join(storeDir, 'counter.tar.zst');
  const exported = await engine.export(cp.snapshot, createWriteStream(archive));
  const imported = await engine.import(createReadStream(archive), { as: 'counter-copy' });
  console.log(`exported ${exported.archiveBytes} bytes; imported as ${imported.snapshot}`);

  const listed = (await engine.list()).map((s) => s.manifest.id);
  const removed = await engine.remove(listed);
  console.log(JSON.stringify({ ok: true, pid, restoredPid: restored.pid, before, after, listed, removed: removed.every((r) => r.ok) }));
} catch (err) {
  // Every error ferry raises is a FerryError: a stable code, what went wrong, and what to do.
  if (isFerryError(err)) console.error(`${err.code}: ${err.message}${err.hint ? `\nhint: ${err.hint}` : ''}`);
  else console.error(err);
  process.exitCode = 1;
} finally {
  // The workload, original or restored.
  for (const p of [pid, restored?.pid]) {
    try { if (p !== undefined) process.kill(p, 'SIGKILL'); } catch { /* already gone */ }
  }
}
