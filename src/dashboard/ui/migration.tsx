// A migration live: its phase timeline, bytes and rate of the transfer, downtime, and whether it
// ended in commit or was rolled back (the migrate job's events and result).
import { timelineSpec } from '../charts.js';
import { formatBytes, formatMs, formatRate, migrationOutcome, timeline, transferRate } from '../model.js';
import type { Api } from './api.js';
import { useEffect, useState } from 'preact/hooks';
import { Chart, ErrorBox, StateText } from './common.js';
import { JobList } from './jobs.js';
import { useLiveJob } from './live.js';

export function MigrationView({ api, tick, selected, onSelect }: { api: Api; tick: number; selected: string | undefined; onSelect: (id: string) => void }) {
  // The list below follows the selected job's state changes at once (not only at its next poll).
  const [bump, setBump] = useState(0);
  return (
    <section aria-labelledby="migration-h">
      <h2 id="migration-h">Migration</h2>
      {selected ? <MigrationDetail api={api} id={selected} onState={() => setBump((b) => b + 1)} /> : <p>Start one from Workloads (Migrate…), or choose one below.</p>}
      <JobList api={api} tick={tick + bump} selected={selected} onSelect={onSelect} kind="migrate" />
    </section>
  );
}

function MigrationDetail({ api, id, onState }: { api: Api; id: string; onState: () => void }) {
  const { live, error } = useLiveJob(api, id);
  useEffect(() => { onState(); }, [live.job?.state]);
  const out = migrationOutcome(live.job);
  const now = Date.now();
  const tl = timeline(live.phases, now);
  const spec = timelineSpec(tl, `migration ${id}`);
  const t = live.transfer;
  const rate = transferRate(t);
  const to = out.destination ? `${out.destination.host}${out.destination.url ? ` (${out.destination.url})` : ''}` : undefined;
  return (
    <div class="detail" aria-labelledby="mig-detail-h">
      <h3 id="mig-detail-h">migration <code>{id}</code> <StateText state={out.state} /></h3>
      <p role="status" class={`outcome outcome-${out.state.replace(' ', '-')}`} data-outcome={out.state}>{out.text}</p>
      <ErrorBox error={error} title="The migration's event stream failed" />
      {live.job?.error ? <ErrorBox error={live.job.error} title={`Failed${live.job.error.phase ? ` in ${live.job.error.phase}` : ''}`} /> : null}
      <dl class="facts">
        <dt>Downtime</dt><dd data-fact="downtime">{formatMs(out.downtimeMs)}</dd>
        <dt>Total</dt><dd>{formatMs(out.totalMs)}</dd>
        <dt>Moved</dt><dd data-fact="bytes">{out.bytesMoved !== null ? formatBytes(out.bytesMoved) : t ? formatBytes(t.bytes) : '—'}{out.wireBytes !== null ? ` (${formatBytes(out.wireBytes)} on the wire)` : ''}</dd>
        <dt>Rate</dt><dd data-fact="rate">{formatRate(rate)}</dd>
        {to ? <><dt>Destination</dt><dd>{to}</dd></> : null}
        {out.strategy ? <><dt>Strategy</dt><dd data-fact="strategy">{out.strategy.name}{out.strategy.because ? ` — ${out.strategy.because}` : ''}</dd></> : null}
      </dl>
      {t && out.state === 'running' ? (
        <p>
          <label for="mig-progress">Transfer: {formatBytes(t.bytes)} of about {formatBytes(t.totalBytes)}</label>{' '}
          <progress id="mig-progress" max={Math.max(t.totalBytes, t.bytes, 1)} value={t.bytes} />
        </p>
      ) : null}
      <h4>Phase timeline</h4>
      {tl.length ? (
        <ol class="phases" aria-live="polite">
          {tl.map((p, i) => (
            <li key={`${p.name}-${i}`} data-phase={p.name} data-state={p.endMs === null ? 'running' : 'done'}>
              <StateText state={p.endMs === null ? 'running' : 'done'} /> <strong>{p.name}</strong> at +{formatMs(p.startMs)}{p.endMs !== null ? `, ${formatMs(p.ms)}` : ' …'}
            </li>
          ))}
        </ol>
      ) : <p>No phase yet.</p>}
      {spec && out.state !== 'running' ? <Chart id="migration-timeline" spec={spec} caption="Phases of the migration on a time axis" /> : null}
      <details><summary>Event log ({live.log.length})</summary><ol class="log">{live.log.map((l, i) => <li key={i}>{l}</li>)}</ol></details>
    </div>
  );
}
