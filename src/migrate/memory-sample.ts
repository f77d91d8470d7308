import { open, readFile } from 'node:fs/promises';
import zstd from 'zstd-napi/binding.js';

/**
 * A look at a running workload's memory before anything is frozen, for `--strategy auto`: how
 * fast it rewrites its pages and how well they compress. Without the kernel's dirty-page
 * tracking, pages are sampled by content: N pages picked at random (weighted by size) from the
 * root process's writable private mappings are read through /proc/PID/mem twice, an interval
 * apart; the share that changed, times the tree's resident bytes, over the interval, is the dirty
 * rate. Their zstd ratio (level 1, untouched all-zero pages left out: CRIU does not dump them) is
 * the compressibility. Costs a few MiB of reads; the workload runs on undisturbed.
 */

export interface MemorySample {
  /** Pages read (non-zero ones at the first read). */
  pages: number;
  /** Of them, changed after the interval. */
  changed: number;
  intervalMs: number;
  /** The resident bytes the rate is scaled to. */
  bytes: number;
  dirtyBytesPerSec: number;
  /** Raw / compressed (≥ 1). */
  compressRatio: number;
}

const PAGE = 4096;

interface Range { start: number; end: number }

/** Writable private mappings (heap, anonymous, data), from /proc/PID/maps. */
export function writableRanges(maps: string): Range[] {
  const out: Range[] = [];
  for (const line of maps.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) rw-p \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (!m) continue;
    const name = m[3] ?? '';
    if (name.startsWith('[v') || name === '[stack]') continue; // vvar, vsyscall, vdso; the stack is tiny
    out.push({ start: parseInt(m[1]!, 16), end: parseInt(m[2]!, 16) });
  }
  return out;
}

/** `n` page addresses, uniformly over the ranges' bytes (a range twice as big is picked twice as often). */
export function pickPages(ranges: Range[], n: number, random: () => number = Math.random): number[] {
  const total = ranges.reduce((a, r) => a + (r.end - r.start) / PAGE, 0);
  if (total === 0) return [];
  const picks = new Set<number>();
  for (let tries = 0; picks.size < Math.min(n, total) && tries < n * 4; tries++) {
    let k = Math.floor(random() * total);
    for (const r of ranges) {
      const pages = (r.end - r.start) / PAGE;
      if (k < pages) { picks.add(r.start + k * PAGE); break; }
      k -= pages;
    }
  }
  return [...picks].sort((a, b) => a - b);
}

export async function sampleMemory(pid: number, bytes: number, o: { pages?: number; intervalMs?: number } = {}): Promise<MemorySample | undefined> {
  const n = o.pages ?? 1024;
  const intervalMs = o.intervalMs ?? 300;
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    const addrs = pickPages(writableRanges(await readFile(`/proc/${pid}/maps`, 'utf8')), n);
    fh = await open(`/proc/${pid}/mem`, 'r');
    const read = async (): Promise<Map<number, Buffer>> => {
      const got = new Map<number, Buffer>();
      for (const a of addrs) {
        const b = Buffer.alloc(PAGE);
        const r = await fh!.read(b, 0, PAGE, a).catch(() => undefined); // a mapping gone meanwhile
        if (r?.bytesRead === PAGE) got.set(a, b);
      }
      return got;
    };
    const first = new Map([...await read()].filter(([, b]) => !isZero(b)));
    if (first.size === 0) return undefined;
    await new Promise((r) => setTimeout(r, intervalMs));
    const second = await read();
    let changed = 0;
    for (const [a, b] of first) if (!second.get(a)?.equals(b)) changed++;
    const raw = Buffer.concat([...first.values()]);
    const out = Buffer.allocUnsafe(raw.length + 1024);
    const compressed = new zstd.CCtx().compress(out, raw, 1);
    return {
      pages: first.size, changed, intervalMs, bytes,
      dirtyBytesPerSec: Math.round((changed / first.size) * bytes / (intervalMs / 1000)),
      compressRatio: Math.max(1, Math.round((raw.length / Math.max(1, compressed)) * 100) / 100),
    };
  } catch {
    return undefined; // no access, or the process is gone: auto decides without it
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i += 8) if (b.readBigUInt64LE(i) !== 0n) return false;
  return true;
}
