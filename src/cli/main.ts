import { FerryError } from '../util/errors.js';
import { engineChannels, type RecoveredEvent } from '../engine/channels.js';
import { processOutput, type Command, type CommandContext } from './command.js';
import { reportError } from './output.js';

/** Verbs, loaded only when used (keeps start-up lean). */
const COMMANDS: Record<string, () => Promise<{ command: Command }>> = {
  run: () => import('./commands/run.js'),
  ps: () => import('./commands/ps.js'),
  stop: () => import('./commands/stop.js'),
  checkpoint: () => import('./commands/checkpoint.js'),
  restore: () => import('./commands/restore.js'),
  snapshots: () => import('./commands/snapshots.js'),
  export: () => import('./commands/export.js'),
  import: () => import('./commands/import.js'),
  'container-archive': () => import('./commands/container-archive.js'),
  doctor: () => import('./commands/doctor.js'),
  criu: () => import('./commands/criu.js'),
  version: () => import('./commands/version.js'),
  bench: () => import('./commands/bench.js'),
  agent: () => import('./commands/agent.js'),
  migrate: () => import('./commands/migrate.js'),
  replicate: () => import('./commands/replicate.js'),
  testbed: () => import('./commands/testbed.js'),
  warm: () => import('./commands/warm.js'),
  clone: () => import('./commands/clone.js'),
  host: () => import('./commands/host.js'),
  schedule: () => import('./commands/schedule.js'),
  failover: () => import('./commands/failover.js'),
};

const GLOBAL_HELP = `ferry — checkpoint, restore and live-migrate Linux processes and containers (on CRIU)

usage: ferry <command> [options]

commands:
  run               start a program in its own pid namespace, detached (ferry run --name N -- CMD…)
  ps                list the workloads ferry started: state, pid, command, logs
  stop              end a workload ferry started: SIGTERM, then SIGKILL after --timeout
  checkpoint        checkpoint a pid or workload into the store; prints the snapshot id
  restore           restore a snapshot (checksums and host checks first); prints the new pid
  snapshots         ls | inspect ID | rm ID
  export            write a snapshot (with its ancestors) to one archive: ferry export ID FILE|-
  import            import an archive from ferry export (checked before it appears): ferry import FILE|-
  container-archive export|import a container snapshot as a Podman/CRI-O checkpoint archive
  doctor            check this host: CRIU, kernel features, runtimes, store; proves C/R works
  criu              talk to CRIU directly: version, check, features, dump, restore
  version           print ferry's version
  bench             memory|concurrency|warmstart|dedup|overhead|all|migrate [--quick]: the seed experiments and migration, JSON + HTML report
  migrate           move a running workload to another host's agent (--to HOST|URL), behind a commit point
  replicate         keep an incrementally updated copy of a running workload on another host's agent (--to HOST|URL)
  agent             run the per-host agent: HTTP API for jobs, events, snapshots, metrics (--listen, --token-file)
  testbed           up|exec|status|down: hosts on this machine (network namespaces, shaped links, an agent each)
  warm              ls | rm KEY: the warm snapshots of ferry run --warm KEY --ready PROBE
  clone             start N copies of a workload, each in its own pid namespace, the original left running
  host              evacuate --to-disk | --to HOST, restore: every workload of the host off it and back, verified
  schedule          periodic snapshots of a workload by the agent (--every, --keep, --replicate-to HOST); ls | rm ID
  failover          on a standby: restore the newest complete replica of a workload (--from HOST)

global options:
  --json            machine-readable output on stdout (every command)
  --store DIR       snapshot store (default: $FERRY_STORE or /var/lib/ferry)
  --agent URL       run checkpoint, restore, migrate, ps, snapshots ls/inspect/rm, host, schedule and failover through
                    a ferry agent (default:
                    $FERRY_AGENT; empty: local); its token: --token-file FILE or $FERRY_TOKEN. Verbs about this
                    machine (run, stop, doctor, criu, bench, agent, export, import, ...) run locally when the URL
                    comes from $FERRY_AGENT, and refuse an explicit --agent
  --debug           show stack traces on errors
  -h, --help        help for ferry or a command

Run \`ferry <command> --help\` for a command's options.`;

/** Pulls the global flags out of argv (wherever they appear) and returns the rest. */
function splitGlobals(argv: string[]): { rest: string[]; ctx: CommandContext; agentFlag: boolean } {
  const ctx: CommandContext = { json: false, debug: false, store: process.env['FERRY_STORE'] || '/var/lib/ferry', out: processOutput };
  const rest: string[] = [];
  // An empty $FERRY_AGENT (or --agent '') means local.
  let agentUrl = process.env['FERRY_AGENT'] ?? '';
  let agentFlag = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--') { rest.push(...argv.slice(i)); break; }
    if (a === '--json') ctx.json = true;
    else if (a === '--debug') ctx.debug = true;
    else if (a === '--store') {
      const v = argv[++i];
      if (!v) throw new FerryError('ERR_USAGE', '--store needs a directory', { hint: 'ferry --store /var/lib/ferry <command>' });
      ctx.store = v;
    } else if (a.startsWith('--store=')) ctx.store = a.slice('--store='.length);
    else if (a === '--agent' || a.startsWith('--agent=')) {
      const v = a === '--agent' ? argv[++i] : a.slice('--agent='.length);
      if (v === undefined || v.startsWith('-')) throw new FerryError('ERR_USAGE', '--agent needs a URL', { hint: 'ferry --agent http://127.0.0.1:7387 <command>' });
      agentUrl = v;
      agentFlag = true;
    } else rest.push(a);
  }
  if (agentUrl !== '') ctx.agent = { url: agentUrl };
  return { rest, ctx, agentFlag };
}

/** Verbs that run through an agent (--agent URL or $FERRY_AGENT). */
const REMOTE_VERBS = new Set(['checkpoint', 'restore', 'snapshots', 'ps', 'migrate', 'host', 'schedule', 'failover']);
/**
 * Verbs about the machine they run on (its processes, CRIU, kernel, files): with the agent's URL
 * only from $FERRY_AGENT (set for a whole shell on a host) they run locally, so `ferry run` works
 * beside `ferry checkpoint` there; an explicit --agent on them is refused, not ignored.
 */
const LOCAL_VERBS = new Set(['run', 'stop', 'doctor', 'criu', 'bench', 'agent', 'export', 'import', 'container-archive', 'testbed', 'warm', 'clone']);

/** Remote mode: the verb must support it; the token comes from --token-file FILE (taken out of args) or $FERRY_TOKEN. */
async function remoteSetup(ctx: CommandContext, verb: string, args: string[], agentFlag: boolean): Promise<string[]> {
  if (!ctx.agent) return args;
  // `version` is ferry's own, and the agent itself always runs here.
  if (verb === 'version' || verb === 'agent' || (!agentFlag && LOCAL_VERBS.has(verb))) {
    delete ctx.agent;
    return args;
  }
  if (!REMOTE_VERBS.has(verb)) {
    throw new FerryError('ERR_USAGE', `\`ferry ${verb}\` does not run through an agent: it works on the machine it runs on (checkpoint, restore, migrate, ps, snapshots ls/inspect/rm, host, schedule and failover run through one)`, {
      hint: 'run it without --agent on the agent\'s host (with the URL only in $FERRY_AGENT, it runs locally)',
    });
  }
  const out: string[] = [];
  let tokenFile: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    if (a === '--token-file') tokenFile = args[++i];
    else if (a.startsWith('--token-file=')) tokenFile = a.slice('--token-file='.length);
    else out.push(a);
  }
  const token = tokenFile !== undefined ? await (await import('../agent/token.js')).readTokenFile(tokenFile) : process.env['FERRY_TOKEN'] || undefined;
  if (token !== undefined) ctx.agent.token = token;
  return out;
}

export async function main(argv: string[]): Promise<number> {
  let ctx: CommandContext = { json: argv.includes('--json'), debug: argv.includes('--debug'), store: '', out: processOutput };
  // Checkpoints an earlier ferry was killed in the middle of are finished before a command
  // runs; each is announced (on stderr: stdout stays the command's own).
  const onRecovered = (m: unknown) => {
    const e = m as RecoveredEvent;
    ctx.out.stderr(`ferry: interrupted checkpoint ${e.snapshot} ${e.action === 'committed' ? 'committed' : e.action === 'removed' ? 'removed' : 'kept'}: ${e.reason}\n`);
  };
  engineChannels.recovered.subscribe(onRecovered);
  try {
    const split = splitGlobals(argv);
    ctx = split.ctx;
    let [verb, ...args] = split.rest;
    // `ferry help VERB` is `ferry VERB --help`.
    if (verb === 'help' && args[0] !== undefined) [verb, args] = [args[0], ['--help']];
    if (verb === undefined || verb === '-h' || verb === '--help' || verb === 'help') {
      process.stdout.write(GLOBAL_HELP + '\n');
      return verb === undefined ? 2 : 0;
    }
    if (verb === '--version' || verb === '-V') return await (await COMMANDS['version']!()).command.run([], ctx);
    const load = COMMANDS[verb];
    if (!load) {
      throw new FerryError('ERR_USAGE', `unknown command '${verb}'`, {
        hint: `commands: ${Object.keys(COMMANDS).join(', ')} (see \`ferry --help\`)`,
      });
    }
    const { command } = await load();
    // (Only ferry's own arguments: a command after `--`, as in `testbed exec h1 -- CMD --help`, keeps its own.)
    const own = args.includes('--') ? args.slice(0, args.indexOf('--')) : args;
    if (own.includes('-h') || own.includes('--help')) {
      process.stdout.write(`${command.summary}\n\nusage: ${command.usage}\n`);
      return 0;
    }
    return await command.run(await remoteSetup(ctx, verb, args, split.agentFlag), ctx);
  } catch (err) {
    return reportError(err, ctx);
  }
}

// No top-level await: scripts/build-cli.mjs bundles this file as CommonJS (no ES module loader
// to start), and main() never rejects (reportError is its boundary).
void main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
