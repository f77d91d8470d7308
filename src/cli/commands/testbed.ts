import { realpathSync } from 'node:fs';
import { FerryError } from '../../util/errors.js';
import { emitJson, parse, type Command, type CommandContext } from '../command.js';

const USAGE = 'ferry testbed up [--hosts N] [--rate RATE] [--delay MS] [--json]\n' +
  '       ferry testbed exec HOST -- CMD [ARGS…]\n' +
  '       ferry testbed status [--json]\n' +
  '       ferry testbed down [--json]\n' +
  '  up      hosts h1…hN (default 2) as network namespaces on one bridge (in a switch namespace of its own),\n' +
  '          every link shaped with tc to RATE both ways (default 1gbit; e.g. 100mbit), --delay MS of one-way\n' +
  '          delay between two hosts (netem), each host with its own store and its own agent (token-protected)\n' +
  '  exec    runs CMD in HOST\'s network namespace, in this directory, with FERRY_STORE, FERRY_AGENT and\n' +
  '          FERRY_TOKEN set for that host; exits with CMD\'s status\n' +
  '  status  hosts, addresses, agents (alive? answering?), shaping; exit 1 when a testbed is up but broken\n' +
  '  down    removes everything (agents, processes in the namespaces, namespaces, links, qdiscs, stores and\n' +
  '          their memory tiers), also after a crash; nothing up is fine\n' +
  '  $FERRY_TESTBED_DIR (default /run/ferry-testbed) holds its files; $FERRY_TESTBED_PREFIX (default ferry-tb-)\n' +
  '  names its namespaces.';

/** The ferry command line the agents run: the entry this process was started with. */
function thisCli(): string | undefined {
  const entry = process.argv[1];
  if (entry === undefined) return undefined;
  try { return realpathSync(entry); } catch { return undefined; }
}

async function up(argv: string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { hosts: { type: 'string' }, rate: { type: 'string' }, delay: { type: 'string' } }, 'testbed up');
  if (positionals.length) throw new FerryError('ERR_USAGE', `testbed up: unexpected argument '${positionals[0] ?? ''}'`, { hint: 'ferry testbed up [--hosts N] [--rate RATE] [--delay MS]' });
  const { parseDelay, parseHostCount, parseRate } = await import('../../testbed/plan.js');
  const hosts = parseHostCount(values.hosts);
  if (values.rate !== undefined) parseRate(values.rate);
  const delayMs = parseDelay(values.delay);
  const { testbedUp } = await import('../../testbed/testbed.js');
  const cli = thisCli();
  const r = await testbedUp({ hosts, delayMs, ...(values.rate !== undefined ? { rate: values.rate } : {}), ...(cli !== undefined ? { cli } : {}) });
  if (ctx.json) {
    emitJson(ctx.out, r);
    return 0;
  }
  const lines = [`testbed up: ${r.hosts.length} host(s) on ${r.subnet}, links shaped to ${r.rate}${r.delayMs ? ` with ${r.delayMs} ms delay` : ''}`];
  for (const h of r.hosts) lines.push(`  ${h.name}  ${h.address.padEnd(15)}  agent ${h.agent} (pid ${h.agentPid})  store ${h.store}`);
  lines.push(`token: ${r.token}`, 'run commands on a host with `ferry testbed exec h1 -- CMD`; `ferry testbed down` removes it all');
  ctx.out.stdout(lines.join('\n') + '\n');
  return 0;
}

async function exec(argv: string[]): Promise<number> {
  // HOST, then an optional `--`, then the command exactly as given (its own options included).
  const [host, ...rest] = argv;
  if (host === undefined || host.startsWith('-')) throw new FerryError('ERR_USAGE', 'testbed exec: give a host and a command', { hint: 'ferry testbed exec h1 -- CMD ARGS…' });
  const command = rest[0] === '--' ? rest.slice(1) : rest;
  const { testbedExec } = await import('../../testbed/testbed.js');
  return testbedExec(host, command);
}

const rate = (bits: number | undefined) => bits === undefined ? '?' : bits >= 1e9 ? `${bits / 1e9}gbit` : bits >= 1e6 ? `${bits / 1e6}mbit` : `${bits / 1e3}kbit`;

async function status(argv: string[], ctx: CommandContext): Promise<number> {
  parse(argv, {}, 'testbed status', false);
  const { testbedStatus } = await import('../../testbed/testbed.js');
  const s = await testbedStatus();
  const code = s.up && !s.healthy ? 1 : 0;
  if (ctx.json) {
    emitJson(ctx.out, s);
    return code;
  }
  if (!s.up) {
    ctx.out.stdout(s.leftovers.length
      ? `no testbed is up, but namespaces of one are left: ${s.leftovers.join(', ')} (\`ferry testbed down\` removes them)\n`
      : 'no testbed is up (`ferry testbed up` starts one)\n');
    return 0;
  }
  const lines = [`testbed ${s.healthy ? 'up' : 'up but BROKEN'}: ${s.hosts.length} host(s) on ${s.subnet}, rate ${s.rate}${s.delayMs ? `, ${s.delayMs} ms delay` : ''}; files in ${s.dir}`];
  for (const h of s.hosts) {
    const shaping = (qs: typeof h.shaping.host) => qs.map((q) => q.kind === 'tbf' ? `tbf ${rate(q.rateBitsPerSec)}` : q.kind === 'netem' ? `netem ${q.delayMs ?? '?'}ms` : q.kind).join('+') || 'none';
    lines.push(`  ${h.name}  ${h.address.padEnd(15)}  ${h.netnsExists ? `netns ${h.netns}` : `netns ${h.netns} GONE`}  agent ${h.agent} pid ${h.agentPid} ` +
      `${h.agentHealthy ? 'healthy' : h.agentAlive ? `NOT ANSWERING (${h.agentError ?? '?'})` : 'NOT RUNNING'}  shaping out ${shaping(h.shaping.host)}, in ${shaping(h.shaping.switch)}`);
  }
  ctx.out.stdout(lines.join('\n') + '\n');
  return code;
}

async function down(argv: string[], ctx: CommandContext): Promise<number> {
  parse(argv, {}, 'testbed down', false);
  const { testbedDown } = await import('../../testbed/testbed.js');
  const r = await testbedDown();
  if (ctx.json) {
    emitJson(ctx.out, r);
    return 0;
  }
  ctx.out.stdout(r.wasUp
    ? `testbed down: removed ${r.namespaces.length} namespace(s), ${r.stores.length} store(s), ${r.memoryTiers.length} memory tier(s); ` +
      `${r.agentsStopped} agent(s) stopped, ${r.processesKilled} process(es) killed\n`
    : 'no testbed was up; nothing to remove\n');
  return 0;
}

export const command: Command = {
  summary: 'A testbed of hosts on this machine: network namespaces on one bridge, shaped links, a store and an\n' +
    'agent per host. Traffic stays between the testbed\'s namespaces.',
  usage: USAGE,
  async run(argv, ctx) {
    const [sub, ...rest] = argv;
    switch (sub) {
      case 'up': return up(rest, ctx);
      case 'exec': return exec(rest);
      case 'status': return status(rest, ctx);
      case 'down': return down(rest, ctx);
      default:
        throw new FerryError('ERR_USAGE', sub === undefined ? 'testbed: give a subcommand' : `testbed: unknown subcommand '${sub}'`, { hint: 'ferry testbed up|exec|status|down (see `ferry testbed --help`)' });
    }
  },
};
