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
  /** True when checkpoint/restore of a process works on this host. */
  ok: boolean;
  host: { hostname: string; kernel: string; arch: string };
  criu: { path: string | null; source: string | null; version: string | null };
  checks: DoctorCheck[];
}
