import { DEFAULT_HOST, DEFAULT_PORT, parseListen, checkListenSafety } from '../../agent/listen.js';
import { emitJson, parse, type Command } from '../command.js';

export const command: Command = {
  summary: 'Run the per-host agent: an HTTP API (JSON) for checkpoints and restores as jobs, their live events,\n' +
    'snapshots, workloads and Prometheus metrics. Stops on SIGTERM/SIGINT (running checkpoints stop at their safe point).',
  usage: `ferry agent [--listen ADDR:PORT] [--token-file FILE] [--config FILE] [--log-file FILE] [--json]\n` +
    `  --listen      default ${DEFAULT_HOST}:${DEFAULT_PORT}; a non-loopback address needs --token-file\n` +
    '  --token-file  every request then needs Authorization: Bearer <the file\'s first line> (16+ characters)\n' +
    '  --config      JSON: the scheduler\'s budgets {"scheduler": {"dumps"|"dumpsPerCore", "memoryBytes", "diskBytes",\n' +
    '                "memoryBandwidth", "diskBandwidth"}, "maxRunningJobs"} (sizes: bytes or "2G")\n' +
    '  --log-file    JSON log lines (one object per line) go there instead of stderr\n' +
    '  FERRY_PEERS=NAME=URL,… lists other agents for the dashboard (GET /); FERRY_AGENT_NAME names this one\n' +
    '  The routes are in README ("The agent") and at GET /v1/openapi.json.',
  async run(argv, ctx) {
    const { values } = parse(argv, { listen: { type: 'string' }, 'token-file': { type: 'string' }, 'log-file': { type: 'string' }, config: { type: 'string' } }, 'agent', false);
    const listen = parseListen(values.listen);
    // Refused before anything is read or loaded.
    checkListenSafety(listen, values['token-file'] !== undefined);
    const { startAgent } = await import('../../agent/server.js');
    const { readTokenFile } = await import('../../agent/token.js');
    const token = values['token-file'] !== undefined ? await readTokenFile(values['token-file']) : undefined;
    // The dashboard's hosts view: this agent's name and its peers (the testbed sets both).
    const { parsePeers } = await import('../../agent/peers.js');
    const peers = parsePeers(process.env['FERRY_PEERS']);
    const name = process.env['FERRY_AGENT_NAME'] || undefined;
    const config = values.config !== undefined ? await (await import('../../agent/config.js')).readAgentConfig(values.config) : undefined;
    const agent = await startAgent({
      listen, store: ctx.store, ...(token !== undefined ? { token } : {}), ...(values['log-file'] !== undefined ? { logFile: values['log-file'] } : {}),
      ...(config !== undefined ? { config } : {}),
      ...(name !== undefined ? { name } : {}), peers,
    });
    if (ctx.json) emitJson(ctx.out, { listening: agent.url, store: ctx.store, auth: token !== undefined });
    else ctx.out.stderr(`ferry agent listening on ${agent.url} (store ${ctx.store}${token !== undefined ? ', bearer token required' : ''}); SIGTERM or Ctrl-C stops it\n`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      const on = (s: NodeJS.Signals) => () => resolve(s);
      process.once('SIGTERM', on('SIGTERM'));
      process.once('SIGINT', on('SIGINT'));
    });
    await agent.close(signal);
    return 0;
  },
};
