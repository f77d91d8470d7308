/**
 * CRIU's NOTIFY callbacks (its "action scripts", delivered over RPC). Every script CRIU 4.2
 * can send has a typed handler here, and a default. A script name ferry does not know makes
 * the operation fail loudly: silently acking something new could break the commit point.
 *
 * A handler returns normally to let CRIU continue, or throws to make CRIU fail that step
 * (see `NOTIFY_FAILURE_EFFECT` for what that means for each script).
 */

export const NOTIFY_SCRIPTS = [
  'pre-stream',
  'pre-dump',
  'post-dump',
  'pre-restore',
  'post-restore',
  'network-lock',
  'network-unlock',
  'setup-namespaces',
  'post-setup-namespaces',
  'pre-resume',
  'post-resume',
  'orphan-pts-master',
  'status-ready',
  'query-ext-files',
] as const;

export type NotifyScript = (typeof NOTIFY_SCRIPTS)[number];

export function isNotifyScript(name: string): name is NotifyScript {
  return (NOTIFY_SCRIPTS as readonly string[]).includes(name);
}

/** What CRIU does when ferry answers a script with failure. */
export const NOTIFY_FAILURE_EFFECT: Readonly<Record<NotifyScript, string>> = {
  'pre-stream': 'the dump or restore fails',
  'pre-dump': 'the dump is aborted before the tasks are frozen',
  'post-dump': 'the tasks are resumed (not killed) and the dump reports failure',
  'pre-restore': 'the restore is aborted',
  'post-restore': 'the restore is aborted and the restored tasks are killed',
  'network-lock': 'the dump fails',
  'network-unlock': 'nothing (CRIU ignores it)',
  'setup-namespaces': 'the restore is killed',
  'post-setup-namespaces': 'the restore is killed',
  'pre-resume': 'nothing (CRIU only logs it)',
  'post-resume': 'nothing (CRIU only logs it)',
  'orphan-pts-master': 'nothing useful',
  'status-ready': 'that step fails',
  'query-ext-files': 'the dump fails',
};

/** Context passed to every handler. */
export interface NotifyContext {
  script: NotifyScript;
  /** The root task's real pid, for scripts that carry one (post-restore, setup-namespaces). */
  pid: number | undefined;
  /** File descriptors CRIU sent with the notification (orphan-pts-master); the handler owns them. */
  fds: number[];
}

/** What a handler may answer besides success. Only query-ext-files uses it. */
export interface NotifyReply {
  /** External resources to add to the dump (`--external` entries). */
  external?: string[];
}

export type NotifyHandler = (ctx: NotifyContext) => void | NotifyReply | Promise<void | NotifyReply>;

/** One optional handler per script. Missing ones use the default: acknowledge and continue. */
export type NotifyHandlers = Partial<Record<NotifyScript, NotifyHandler>>;
