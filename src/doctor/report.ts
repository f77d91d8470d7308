/** One line of `ferry doctor`: what was checked, what was found, and what to do about it. */
export interface DoctorCheck {
  id: string;
  title: string;
  /** ok: fine. warn: some ferry feature is unavailable. fail: checkpoint/restore cannot work. */
  status: 'ok' | 'warn' | 'fail';
  /** What was found, short (e.g. "4.2.1", "cgroup v1 (hybrid)"). */
  value: string;
  /** What the problem costs the user ("pre-copy migration unavailable: ..."). */
  consequence?: string;
  /** What to do about it. */
  remedy?: string;
}

export interface DoctorReport {
  /**
   * True when no check failed. Only with `selfTest: 'passed'` does that mean checkpoint/restore
   * of a process was shown to work here; with 'skipped' (--quick) it was not tried.
   */
  ok: boolean;
  /** The real checkpoint/restore of a test process: passed, failed, skipped (--quick) or not run (an earlier check failed). */
  selfTest: 'passed' | 'failed' | 'skipped' | 'not-run';
  host: { hostname: string; kernel: string; arch: string };
  criu: { path: string | null; source: string | null; version: string | null };
  checks: DoctorCheck[];
}
