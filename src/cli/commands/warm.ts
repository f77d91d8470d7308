import { Store } from '../../store/store.js';
import { FerryError } from '../../util/errors.js';
import { emitJson, parse, type Command } from '../command.js';

export const command: Command = {
  summary: 'The warm snapshots of `ferry run --warm KEY`: ls lists every key (its snapshot, the command, the\n' +
    'probe, the cold boot\'s time to ready, the last failed warm restore); rm KEY… removes keys and their\n' +
    'snapshots (the next run of a removed key boots cold).',
  usage: 'ferry warm ls [--json]\n       ferry warm rm KEY… [--json]',
  async run(argv, ctx) {
    const { positionals } = parse(argv, {}, 'warm');
    const [verb, ...keys] = positionals;
    const store = new Store({ root: ctx.store });
    const { listWarmKeys, removeWarmKey } = await import('../../scenarios/warm-admin.js');
    if (verb === 'ls') {
      if (keys.length) throw new FerryError('ERR_USAGE', 'warm ls takes no arguments', { hint: 'ferry warm ls [--json]' });
      const rows = await listWarmKeys(store);
      if (ctx.json) {
        emitJson(ctx.out, { keys: rows });
        return 0;
      }
      if (rows.length === 0) ctx.out.stdout('no warm keys\n');
      for (const r of rows) {
        if ('error' in r) {
          ctx.out.stdout(`${r.key}  DAMAGED: ${r.error}\n`);
          continue;
        }
        ctx.out.stdout(`${r.key}  snapshot ${r.snapshot} (${r.tier}${r.snapshotPresent ? '' : ', GONE: the next run boots cold'})  ` +
          `cold boot ${r.coldReadyMs} ms  ready ${r.ready}  taken ${r.createdAt}\n  ${r.command.join(' ')}\n` +
          (r.lastFailure ? `  last warm restore failed at ${r.lastFailure.at}: ${r.lastFailure.reason}\n` : ''));
      }
      return 0;
    }
    if (verb === 'rm') {
      if (keys.length === 0) throw new FerryError('ERR_USAGE', 'warm rm: give one or more keys', { hint: '`ferry warm ls` lists them' });
      const out = [];
      for (const k of keys) out.push(await removeWarmKey(store, k));
      if (ctx.json) emitJson(ctx.out, { removed: out });
      else for (const r of out) ctx.out.stdout(`removed warm key ${r.key}${r.snapshot ? ` and snapshot ${r.snapshot}` : ''}\n`);
      return 0;
    }
    throw new FerryError('ERR_USAGE', `warm: unknown subcommand '${verb ?? ''}'`, { hint: 'ferry warm ls | ferry warm rm KEY…' });
  },
};
