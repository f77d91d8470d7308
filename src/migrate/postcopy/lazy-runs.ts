import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PE_LAZY, readPagemap } from '../../criu/images/pagemap.js';

/** A run of pages CRIU left on the source (PE_LAZY): what the destination must fetch. */
export interface LazyRun {
  /** The task's pid in the images (what the source's page server knows it by). */
  pid: number;
  vaddr: bigint;
  pages: number;
}

/** Every lazy run of a lazy dump's images (pagemap-PID.img, tasks only; shared memory is never lazy). */
export async function lazyRuns(imagesDir: string): Promise<LazyRun[]> {
  const names = (await readdir(imagesDir)).filter((n) => /^pagemap-\d+\.img$/.test(n));
  const runs: LazyRun[] = [];
  for (const name of names) {
    const pid = Number(/\d+/.exec(name)?.[0]);
    const pm = await readPagemap(join(imagesDir, name));
    for (const e of pm.entries) {
      if ((e.flags & PE_LAZY) !== 0 && e.nrPages > 0) runs.push({ pid, vaddr: e.vaddr, pages: e.nrPages });
    }
  }
  return runs;
}

/** The pages of all runs. */
export function lazyPages(runs: readonly LazyRun[]): number {
  return runs.reduce((n, r) => n + r.pages, 0);
}

/** The handler's --lazy file: "PID VADDR_HEX NR_PAGES" a line. */
export async function writeLazyFile(path: string, runs: readonly LazyRun[]): Promise<void> {
  await writeFile(path, runs.map((r) => `${r.pid} ${r.vaddr.toString(16)} ${r.pages}\n`).join(''), { mode: 0o600 });
}
