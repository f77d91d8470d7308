/**
 * Every error code ferry raises, with what it means and how each boundary reports it: the CLI's
 * exit status and the agent's HTTP status. Callers match on the code, so a code never changes
 * meaning; a new code is added here first (FerryError only accepts codes from this table, and
 * error-codes.test.ts checks that every 'ERR_…' literal in the sources is one of them).
 *
 * Exit statuses: 1 an operation failed or was refused; 2 the request itself was malformed
 * (usage); 128 + the signal's number when a signal interrupted the operation (see exitCodeOf).
 * HTTP statuses: 400 bad input, 404 not found, 409 conflicts with the current state, 422 refused
 * (the request is well formed but this target/snapshot/host cannot do it), 500 a fault of ferry,
 * 502 a helper program (CRIU, a container runtime) failed to answer sensibly, 503 not set up or
 * unavailable, 504 a wait ran out, 507 out of room.
 */
export interface ErrorCodeInfo {
  /** What happened, in one line (README's "Errors and exit codes" lists them). */
  meaning: string;
  /** The CLI's exit status. */
  exit: number;
  /** The agent's HTTP status. */
  http: number;
}

const usage = (meaning: string) => ({ meaning, exit: 2, http: 400 }) as const;
const failed = (http: number, meaning: string) => ({ meaning, exit: 1, http }) as const;

export const ERROR_CODES = {
  // The request itself
  ERR_USAGE: usage('the command line or request is malformed: unknown command or option, missing or bad argument'),
  ERR_BAD_OPTION: usage('an option has a value that cannot work (e.g. a dump without a pid)'),
  ERR_INTERRUPTED: { meaning: 'a signal (SIGINT, SIGTERM, SIGHUP) interrupted the operation; exit 128 + the signal number: 130, 143, 129', exit: 130, http: 503 },
  ERR_CANCELLED: failed(409, 'the job was cancelled (e.g. `DELETE /v1/jobs/ID`) while it waited in the scheduler\'s queue; nothing was done'),
  ERR_INTERNAL: failed(500, 'a bug in ferry: an error that is not a FerryError'),

  // Targets: processes, workloads, containers
  ERR_NO_PROCESS: failed(404, 'no process with that pid'),
  ERR_NO_WORKLOAD: failed(404, 'no pid or workload with that name'),
  ERR_NO_CONTAINER: failed(404, 'no container with that id in the runtime'),
  ERR_NO_BUNDLE: failed(404, "the container's OCI bundle (config.json) is missing or unreadable"),
  ERR_NOT_CHECKPOINTABLE: failed(422, 'the target may not be checkpointed (a kernel thread, init, or ferry itself)'),
  ERR_TARGET_DIED: failed(409, 'the target died during the operation (e.g. killed for lack of memory)'),
  ERR_ALREADY_RUNNING: failed(409, 'another operation on the same target or snapshot holds its lock'),
  ERR_WORKLOAD_RUNNING: failed(409, "the snapshot's workload still runs; restore it as a clone or under another name"),
  ERR_WORKLOAD_EXISTS: failed(409, 'a workload with that name already runs'),
  ERR_RUN: failed(422, 'the workload could not be started'),
  ERR_RUN_EXEC: failed(422, 'the command given to `ferry run` cannot be executed (not found, not executable, or its interpreter is missing)'),
  ERR_WORKLOAD_NOT_RUNNING: failed(409, 'the workload is not running: its process exited or was stopped'),
  ERR_STOP_TIMEOUT: failed(504, "a workload's process was still there after SIGKILL and the watchdog's wait"),
  ERR_PID_TAKEN: failed(409, 'a pid the snapshot needs is in use on this host'),
  ERR_CONTAINER_STATE: failed(409, 'the container is not in a state the operation needs (e.g. not running)'),
  ERR_CONTAINER_EXISTS: failed(409, 'a container with that id already exists in the runtime'),
  ERR_CONTAINER_CHECKPOINT: failed(422, 'the container runtime could not checkpoint the container'),
  ERR_CONTAINER_RESTORE: failed(422, 'the container runtime could not restore the container'),
  ERR_RUNTIME: failed(502, 'the container runtime (runc, crun) failed or answered something unexpected'),
  ERR_RUNTIME_MISSING: failed(503, 'the container runtime is not installed'),

  // CRIU
  ERR_CRIU_MISSING: failed(503, 'CRIU is not installed'),
  ERR_CRIU_TOO_OLD: failed(503, 'the installed CRIU is older than the operation needs'),
  ERR_CRIU_FEATURE: failed(422, 'this kernel lacks a feature the operation needs (e.g. soft-dirty tracking)'),
  ERR_CRIU_OPERATION: failed(422, "CRIU answered that the operation failed; the error carries CRIU's first error and log"),
  ERR_CRIU_TRANSPORT: failed(502, 'the conversation with CRIU broke (could not start, died, or answered garbage); the outcome is unknown'),
  ERR_CRIU_UNKNOWN_NOTIFY: failed(502, 'CRIU sent a notification ferry does not know, so it was told to stop'),
  ERR_CRIU_STALLED: failed(504, "the watchdog ended a CRIU that stopped making progress"),
  ERR_NOTIFY_HANDLER: failed(500, "ferry's handler of a CRIU notification failed, so CRIU was told to stop"),
  ERR_BAD_DIRECTORY: failed(400, 'a directory given to CRIU (images, work, parent) cannot be opened'),
  ERR_IMAGE_FORMAT: failed(422, 'a CRIU image file is not in the format ferry reads'),
  ERR_NATIVE_MISSING: failed(503, "ferry's native addon is not built or cannot be loaded"),
  ERR_NATIVE_IO: failed(500, 'a system call on the channel to CRIU or on a snapshot file failed'),
  ERR_CHANNEL_CLOSED: failed(500, 'the channel to CRIU was used after it closed'),

  // Snapshots and the store
  ERR_NO_SNAPSHOT: failed(404, 'no snapshot with that id in the store'),
  ERR_SNAPSHOT_EXISTS: failed(409, 'a snapshot with that id already exists'),
  ERR_SNAPSHOT_CONFLICT: failed(409, 'the store already holds a different snapshot under the same id, or its copies disagree'),
  ERR_SNAPSHOT_CORRUPT: failed(422, "the snapshot's files disagree with its manifest, page index or parent chain"),
  ERR_SNAPSHOT_DAMAGED: failed(422, "a file of the snapshot failed its checksum during restore; nothing was restored"),
  ERR_VERIFY_TIMEOUT: failed(504, "verifying the snapshot's images during a restore did not finish in time (stalled storage); nothing was restored"),
  ERR_VERIFY_CANCELLED: failed(500, "the restore ended before its verification did (internal: the restore's own error is reported)"),
  ERR_SNAPSHOT_BROKEN_CHAIN: failed(422, 'the snapshot builds on a parent that is not in the store'),
  ERR_SNAPSHOT_INCOMPATIBLE: failed(422, "this host cannot restore the snapshot (CRIU line, architecture or CPU features differ)"),
  ERR_COMMIT_FAILED: failed(500, 'the dump finished but the snapshot could not be committed; its images are kept, and the next command on the store commits them'),
  ERR_STORE_UNWRITABLE: failed(503, 'the snapshot store cannot be created or written'),
  ERR_STORE_CONFIG: failed(500, "the store's config file is unreadable or invalid"),
  ERR_STORE_FULL: failed(507, 'the tier has too little free space for the checkpoint'),
  ERR_MEMORY_BUDGET: failed(507, "the checkpoint would exceed the memory tier's budget"),
  ERR_HOST_MEMORY: failed(507, "a memory-tier snapshot would leave the host less available memory than its reserve"),
  ERR_STORE_CORRUPT: failed(500, "the store's identity file (store.json) is unreadable or invalid"),

  // Archives
  ERR_FILE_EXISTS: failed(409, 'the output file already exists; ferry does not overwrite it'),
  ERR_EXPORT: failed(500, 'writing the archive failed'),
  ERR_IMPORT: failed(500, 'reading the archive into the store failed'),
  ERR_ARCHIVE_INVALID: failed(400, 'the file is not an archive ferry can import'),
  ERR_ARCHIVE_TRUNCATED: failed(400, 'the archive ends early'),
  ERR_ARCHIVE_CORRUPT: failed(400, "the archive's contents fail their checksums"),
  ERR_RECEIVE_INVALID: failed(400, 'a received snapshot is malformed (undeclared, incomplete, of the wrong size, or on an unknown parent); nothing was stored'),
  ERR_RECEIVE_CORRUPT: failed(400, "a received snapshot's files fail their checksums or are missing; nothing was stored"),

  // Image transfers between agents (migration's wire)
  ERR_TRANSFER_INVALID: failed(400, 'an image stream is malformed or breaks a limit (order, names, sizes, frame lengths); nothing was kept'),
  ERR_TRANSFER_CORRUPT: failed(400, 'a chunk or a file of an image stream failed its checksum on arrival; nothing was kept'),
  ERR_TRANSFER_TRUNCATED: failed(400, 'an image stream ended, or its connection was cut, before its final frame; nothing was kept'),
  ERR_TRANSFER_FAILED: failed(502, 'sending images failed: the connection to the destination broke, or it answered something that is not the agent\'s API'),
  ERR_TRANSFER_STALLED: failed(504, 'an image transfer made no progress for longer than its watchdog allows; it was stopped and nothing was kept'),
  ERR_TRANSFER_ABORTED: failed(409, 'an image transfer was cancelled by its caller (e.g. its migration was rolled back); nothing was kept'),

  // The agent (HTTP API) and its jobs
  ERR_UNAUTHORIZED: failed(401, 'the agent needs `Authorization: Bearer <token>` with its token, and the request had none or another'),
  ERR_BODY_TOO_LARGE: failed(413, "the request's body is larger than the agent accepts"),
  ERR_NO_ROUTE: failed(404, 'the agent has no such route (method and path)'),
  ERR_NO_JOB: failed(404, 'no job with that id (the newest 1,000 finished jobs are kept)'),
  ERR_LISTEN_UNSAFE: failed(400, 'the agent was asked to listen on a non-loopback address without a token'),
  ERR_AGENT_UNREACHABLE: failed(503, 'the agent could not be reached (refused, timed out) or answered something that is not its API'),
  ERR_DASHBOARD_MISSING: failed(503, "the agent's dashboard page is not built (scripts/build-dashboard.mjs builds it)"),
  ERR_LISTEN: failed(503, 'the agent cannot listen on the address (in use, or not an address of this host)'),

  // Migration between hosts (ferry migrate)
  ERR_NO_MIGRATION: failed(404, 'the destination knows no migration with that id (never prepared, or already ended and forgotten)'),
  ERR_MIGRATION_STATE: failed(409, 'the migration is not in a state where that step can happen (e.g. commit before restore, abort after commit)'),
  ERR_MIGRATE_REFUSED: failed(422, 'the destination refused the migration before anything was frozen (its CRIU, CPU, space, pids, names or runtime)'),
  ERR_MIGRATE_PEER: failed(502, 'the migration peer failed or could not be reached during a step; the source workload was kept running'),
  ERR_MIGRATE_TIMEOUT: failed(504, "the destination held a restored copy and heard neither commit nor abort in time: it removed the copy (the source's snapshot is kept)"),
  ERR_MIGRATE_STRATEGY: failed(422, 'the chosen migration strategy cannot move this workload between these hosts (its runtime, a kernel feature, or a part not built): nothing was frozen, and the hint names a strategy that can'),
  ERR_MIGRATE_UNCERTAIN: failed(502, 'the commit was sent but its outcome is unknown (the destination stopped answering): the workload may run on the destination; the source kept its snapshot'),
  ERR_POSTCOPY_SOURCE_LOST: failed(502, "a post-copy migration's source (its agent, its CRIU, or the link) was lost before the last page moved: the destination's copy, missing memory, was stopped; the pages still on the source are counted; with --snapshot-first the workload is restored on the source"),
  ERR_POSTCOPY: failed(500, "a post-copy migration's page handling failed (the page handler did not start, or ended with an error): the destination's copy was stopped"),

  // Scenarios: host evacuation, periodic snapshots with a standby, failover
  ERR_NO_SCHEDULE: failed(404, 'the agent has no schedule with that id (`ferry schedule ls` lists them)'),
  ERR_NO_REPLICA: failed(404, 'this host holds no complete replica of that workload (from that host) to fail over to'),
  ERR_NO_EVACUATION: failed(404, 'no evacuation manifest in the store (nothing was evacuated to disk here), or no host operation with that id'),

  // The testbed (ferry testbed: hosts as network namespaces on one machine)
  ERR_TESTBED_SETUP: failed(503, 'the testbed could not be made: a step (ip, tc, nsenter, an agent) failed, or no free subnet; what was made is removed'),
  ERR_TESTBED_RUNNING: failed(409, 'a testbed (or leftovers of one) is already up; `ferry testbed down` removes it'),
  ERR_NO_TESTBED: failed(404, 'no testbed is up'),
  ERR_NO_TESTBED_HOST: failed(404, 'the testbed has no host of that name'),
  ERR_TESTBED_STATE: failed(500, "the testbed's record or token is damaged, or a host's namespace is gone"),
  ERR_TESTBED_CLEANUP: failed(500, '`ferry testbed down` could not remove everything (a process did not end, a namespace or file could not be removed)'),

  // Service addresses (the host's network: ip, iptables, arping)
  ERR_ADDRESS: failed(422, 'a service address cannot be used: not a usable IPv4 address or prefix, or no interface of the host to put it on'),
  ERR_ADDRESS_IN_USE: failed(409, 'the service address is already configured on this host (another workload has it, or a leftover)'),
  ERR_NO_NETNS: failed(404, 'no network namespace with that name (/run/netns/NAME)'),
  ERR_NET_COMMAND: failed(502, 'a network tool (ip, iptables, arping, nsenter) is missing or failed'),
  ERR_NET_TIMEOUT: failed(504, 'a network tool (ip, iptables, arping, nsenter) did not finish in time and was killed'),

  // Scenarios: warm start (ferry run --warm, --ready), clones
  ERR_NOT_READY: failed(504, 'the program did not become ready (its --ready probe) within --ready-timeout; it was left running'),
  ERR_NO_WARM_KEY: failed(404, 'no warm snapshot with that key (`ferry warm ls` lists them)'),
  ERR_WARM_RECORD: failed(500, "a warm key's record is unreadable or invalid (`ferry warm rm KEY` removes it; the next run boots cold)"),
  ERR_NO_PID_NAMESPACE: failed(422, 'the process is not pid 1 of its own pid namespace, so a copy beside it would need the same pids (start it with `ferry run`)'),

  // Benchmarks and test workloads (bench, tests)
  ERR_BENCH: failed(500, 'a benchmark step failed'),
  ERR_WORKLOAD_SETUP: failed(503, 'a test workload cannot be built or is not installed'),
  ERR_WORKLOAD_TIMEOUT: failed(504, 'a test workload did not become ready in time'),
  ERR_WORKLOAD_VERIFY: failed(500, 'a restored test workload failed its own verification'),
} as const satisfies Record<string, ErrorCodeInfo>;

/** A code from the table above. */
export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}
