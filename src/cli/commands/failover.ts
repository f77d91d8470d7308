import { createEngine } from '../../engine/engine.js';
import { availableParallelism } from 'node:os';
import { LimitAdmission } from '../../engine/admission.js';
import { Jobs } from '../../engine/jobs.js';
import { failover, type FailoverResult } from '../../scenarios/failover.js';
import { jobRunner } from '../../scenarios/job-runner.js';
import { FerryError } from '../../util/errors.js';
import { emitJson, parse, type Command } from '../command.js';
import { style } from '../output.js';
import { agentClient } from '../remote.js';

export const command: Command = {
  summary: 'On a standby: restore the newest complete replica of a workload (sent by `ferry schedule --replicate-to`),\n' +
    'verified (checksums and pages before it runs, then alive). A damaged replica is skipped for the next older one.\n' +
    'Prints the new pid; --json adds the replica, when it was taken and how much state that lost.',
  usage: 'ferry failover <name|container:ID> [--from HOST|URL] [--json]\n' +
    '  --from   only replicas from that source: a testbed host name (h1), an agent URL, or a hostname\n' +
    '  Through this host\'s agent ($FERRY_AGENT or --agent); without one, on this store directly.',
  async run(argv, ctx) {
    const { values, positionals } = parse(argv, { from: { type: 'string' } }, 'failover');
    const [name, ...extra] = positionals;
    if (name === undefined || extra.length) throw new FerryError('ERR_USAGE', 'failover: give one workload name', { hint: 'ferry failover web [--from h1]' });
    let from: { url?: string; host?: string } | undefined;
    if (values.from !== undefined) {
      if (/^https?:\/\//.test(values.from)) from = { url: values.from.replace(/\/+$/, '') };
      else {
        // A testbed host's agent URL when there is one (the records name sources by URL), and the name as a hostname.
        const { resolvePeer } = await import('../peer-ref.js');
        const url = await resolvePeer(values.from).then((p) => p.url, () => undefined);
        from = { host: values.from, ...(url !== undefined ? { url } : {}) };
      }
    }
    let r: FailoverResult;
    if (ctx.agent) {
      r = await agentClient(ctx).request<FailoverResult>('POST', '/v1/failover', { name, ...(from ? { from } : {}) }, { timeoutMs: 10 * 60_000 });
    } else {
      const engine = createEngine({ store: ctx.store });
      const jobs = new Jobs({ engine, admission: new LimitAdmission(4 * availableParallelism()) });
      try {
        r = await failover(engine, jobRunner(jobs), { name, ...(from ? { from } : {}) });
      } finally {
        await jobs.close();
      }
    }
    if (ctx.json) emitJson(ctx.out, r);
    else {
      ctx.out.stdout(`${r.pid}\n`);
      ctx.out.stderr(`${style.green('failed over')} ${r.workload} from replica ${r.replica} (taken ${r.takenAt} on ${r.from.host}${r.from.url ? ` ${r.from.url}` : ''}, ${(r.replicaAgeMs / 1000).toFixed(1)} s before): pid ${r.pid}` +
        `${r.skipped.length ? `; skipped ${r.skipped.length} damaged newer replica(s)` : ''}\n`);
    }
    return 0;
  },
};
