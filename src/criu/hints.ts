/**
 * Known CRIU failures and what the user can do about them, matched on CRIU's first error
 * (and, failing that, the whole log excerpt). The first match wins.
 */
interface Hint {
  match: RegExp;
  hint: string;
}

const HINTS: readonly Hint[] = [
  { match: /Failed to open \/proc\/\d+\/comm|Unable to (?:detach from|interrupt task:?) \d+: No such process|No such process/,
    hint: 'the process does not exist (or exited); check the pid with `ps -p PID`' },
  { match: /is not a session leader|outside of its pid namespace/,
    hint: 'the process is not a session leader: start it as one (ferry\'s run, or setsid), or checkpoint it as a shell job (the shell-job option; a ferry snapshot records it and its restore repeats it)' },
  { match: /Can't fork for \d+: File exists|pid.*already exists/i,
    hint: 'a process with the same pid is alive on this host: stop the original first, or run workloads in their own pid namespace (ferry\'s run does)' },
  { match: /Locking network failed|iptables-restore/,
    hint: 'CRIU\'s network lock needs iptables (apt-get install iptables) or CRIU\'s nftables backend for it (the networkLock option)' },
  { match: /has rseq but kernel lacks get_rseq_conf/,
    hint: 'this kernel cannot checkpoint rseq; start the workload with GLIBC_TUNABLES=glibc.pthread.rseq=0' },
  { match: /Connected TCP socket|tcp-established/i,
    hint: 'the process has an established TCP connection: checkpoint it with the tcp-established option' },
  { match: /External socket is used|unix socket.*external|Can't dump half of stream unix connection/i,
    hint: 'the process has a unix socket connected outside the tree: checkpoint it with the ext-unix-sk option' },
  { match: /Can't lookup mount=\d+/,
    hint: 'the process holds a file descriptor opened in another mount namespace (often stdio inherited from outside); start it with its stdio opened inside its namespace' },
  { match: /Tracking memory is not available|mem\.c:\d+.*BUG/,
    hint: 'this kernel has no soft-dirty memory tracking, so pre-dump/incremental tracking is impossible here; use a full dump' },
  { match: /vdso: Unexpected rt vDSO area bounds|Could not initialize kernel features detection/,
    hint: 'this CRIU is too old for this kernel; install CRIU >= 4.2 (ferry\'s setup builds it)' },
  { match: /splice.*Bad file descriptor|Lazy pages transfer FAILED/,
    hint: 'raise fs.pipe-max-size (sysctl fs.pipe-max-size=16777216); ferry\'s host check (doctor) reports it' },
  { match: /Can't restore cpuinfo|CPU.*mismatch|cpuinfo/i,
    hint: 'this host\'s CPU lacks features the snapshot\'s host had; restore on a compatible CPU' },
];

export function hintFor(...texts: (string | undefined)[]): string | undefined {
  for (const h of HINTS) {
    if (texts.some((t) => t !== undefined && h.match.test(t))) return h.hint;
  }
  return undefined;
}
