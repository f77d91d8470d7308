/**
 * core-N.img: one per thread (N = tid as seen in the dumped pid namespace). ferry reads the
 * task part (state, exit code, comm) and the thread part (creds, the thread's own comm);
 * registers, signals, timers and rlimits are in the image but not in ferry's schema.
 */
import { isFieldSet } from '@bufbuild/protobuf';
import { join } from 'node:path';
import { CoreEntrySchema, ThreadCoreEntrySchema } from '../gen/criu-images_pb.js';
import { readSingleEntry } from './decode.js';
import { IMAGE_KINDS } from './magic.js';

export type TaskStateName = 'alive' | 'dead' | 'stopped' | 'zombie';

/** compel's task states, as CRIU writes them in task_core_entry.task_state. */
const TASK_STATES: Readonly<Record<number, TaskStateName>> = { 1: 'alive', 2: 'dead', 3: 'stopped', 6: 'zombie' };

/** CRIU's march enum. */
const ARCHES: Readonly<Record<number, string>> = {
  1: 'x86_64', 2: 'arm', 3: 'aarch64', 4: 'ppc64', 5: 's390', 6: 'mips', 7: 'loongarch64', 8: 'riscv64',
};

export interface Creds {
  uid: number;
  gid: number;
  euid: number;
  egid: number;
}

export interface ThreadCore {
  /** The architecture the thread was dumped on ('x86_64', ... or 'unknown (N)'). */
  arch: string;
  /** The task part; CRIU writes it in every thread's image but only the main thread's counts. */
  task?: {
    state: TaskStateName | `unknown (${number})`;
    exit_code: number;
    comm: string;
  };
  creds?: Creds;
  /** The thread's own name (threads can rename themselves). */
  comm?: string;
}

export function corePath(dir: string, tid: number): string {
  return join(dir, `core-${tid}.img`);
}

export function taskStateName(state: number): TaskStateName | `unknown (${number})` {
  return TASK_STATES[state] ?? `unknown (${state})`;
}

export function archName(mtype: number): string {
  return ARCHES[mtype] ?? `unknown (${mtype})`;
}

/** Reads `core-<tid>.img` in `dir`; undefined when there is none. */
export async function readCore(dir: string, tid: number): Promise<ThreadCore | undefined> {
  const core = await readSingleEntry(CoreEntrySchema, corePath(dir, tid), IMAGE_KINDS.core);
  if (core === undefined) return undefined;
  const out: ThreadCore = { arch: archName(core.mtype) };
  if (core.tc !== undefined) {
    out.task = { state: taskStateName(core.tc.taskState), exit_code: core.tc.exitCode, comm: core.tc.comm };
  }
  const thread = core.threadCore;
  if (thread !== undefined) {
    if (thread.creds !== undefined) {
      const { uid, gid, euid, egid } = thread.creds;
      out.creds = { uid, gid, euid, egid };
    }
    if (isFieldSet(thread, ThreadCoreEntrySchema.field.comm)) out.comm = thread.comm;
  }
  return out;
}
