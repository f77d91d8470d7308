// Jobs: every job the agent keeps (polled), and the selected one live over its event stream:
// state, place in the queue, phases as they start and end, frozen time, result or error, and the
// operation's telemetry charts (CPU, memory, phases).
import { useEffect, useState } from 'preact/hooks';
import type { Job } from '../../engine/jobs.js';
import { cpuSpec, memorySpec, phasesSpec, timelineSpec, type TelemetryLike } from '../charts.js';
import { formatAge, formatBytes, formatMs, frozenMs, timeline } from '../model.js';
import type { Api } from './api.js';
import { Chart, ErrorBox, StateText, useLoad } from './common.js';
import { useLiveJob } from './live.js';

const tookMs = (j: Job): number | null => (j.startedAt && j.endedAt ? Date.parse(j.endedAt) - Date.parse(j.startedAt) : null);
const currentPhase = (j: Job): string => [...j.phases].reverse().find((p) => p.state === 'running')?.name ?? (j.phases.length ? `${j.phases[j.phases.length - 1]!.name} (done)` : '—');

export function JobList({ api, tick, selected, onSelect, kind }: { api: Api; tick: number; selected: string | undefined; onSelect: (id: string) => void; kind?: Job['kind'] }) {
  const jobs = useLoad(() => api.client.jobs(), [api, tick], 2000);
  const now = Date.now();
  const rows = (jobs.data ?? []).filter((j) => !kind || j.kind === kind).sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, 50);
  return (
    <div>
      <ErrorBox error={jobs.error} title="Could not list the jobs" />
      {jobs.data ? rows.length ? (
        <div class="table-wrap">
          <table>
            <caption>{kind ? `${kind} jobs` : 'Jobs'}, newest first</caption>
            <thead><tr><th scope="col">Job</th><th scope="col">Kind</th><th scope="col">State</th><th scope="col">Queue</th><th scope="col">Phase</th><th scope="col">Created</th><th scope="col">Took</th></tr></thead>
            <tbody>
              {rows.map((j) => (
                <tr key={j.id} data-job={j.id} class={j.id === selected ? 'selected' : ''}>
                  <th scope="row"><button type="button" class="link" aria-current={j.id === selected ? 'true' : undefined} onClick={() => onSelect(j.id)}>{j.id}</button></th>
                  <td>{j.kind}</td>
                  <td><StateText state={j.state} /></td>
                  <td>{j.queuePosition !== undefined ? `${j.queuePosition} of ${j.queueLength ?? '?'}` : '—'}</td>
                  <td>{currentPhase(j)}</td>
                  <td>{formatAge(j.createdAt, now)}</td>
                  <td>{formatMs(tookMs(j))}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : <p>No {kind ?? ''} jobs yet.</p> : jobs.loading ? <p>Loading…</p> : null}
    </div>
  );
}

export function JobsView({ api, tick, selected, onSelect }: { api: Api; tick: number; selected: string | undefined; onSelect: (id: string) => void }) {
  // The list follows the selected job's state changes at once (not only at its next poll).
  const [bump, setBump] = useState(0);
  return (
    <section aria-labelledby="jobs-h">
      <h2 id="jobs-h">Jobs</h2>
      {selected ? <JobDetail api={api} id={selected} onState={() => setBump((b) => b + 1)} /> : <p>Choose a job to follow it live.</p>}
      <JobList api={api} tick={tick + bump} selected={selected} onSelect={onSelect} />
    </section>
  );
}

function JobDetail({ api, id, onState }: { api: Api; id: string; onState: () => void }) {
  const { live, error } = useLiveJob(api, id);
  useEffect(() => { onState(); }, [live.job?.state]);
  const job = live.job;
  const now = Date.now();
  const result = job?.result as { snapshot?: string; bytesWritten?: number; logicalBytes?: number; pid?: number; telemetry?: TelemetryLike } | undefined;
  const tel = result?.telemetry;
  const frozen = frozenMs(job);
  const charts = tel ? [
    ['cpu', cpuSpec(tel), 'Host CPU busy % while it ran'],
    ['memory', memorySpec(tel), "Host memory used and the workload's RSS"],
    ['phases', phasesSpec(tel), "ferry's phases (ms)"],
  ] as const : [];
  const tl = timeline(live.phases, now);
  const tlSpec = job?.state === 'running' || job?.state === 'queued' ? undefined : timelineSpec(tl, `${job?.kind ?? 'job'} ${id}`);
  return (
    <div class="detail" aria-labelledby="job-detail-h">
      <h3 id="job-detail-h">{job?.kind ?? 'job'} <code>{id}</code> {job ? <StateText state={job.state} /> : null}</h3>
      <ErrorBox error={error} title="The job's event stream failed" />
      {live.queue ? <p role="status">Waiting in the queue: place {live.queue.position} of {live.queue.length}</p> : null}
      <h4>Phases</h4>
      {live.phases.length ? (
        <ol class="phases" aria-live="polite">
          {live.phases.map((p, i) => (
            <li key={`${p.name}-${i}`} data-phase={p.name} data-state={p.state}>
              <StateText state={p.state === 'done' ? 'done' : 'running'} /> <strong>{p.name}</strong>{p.state === 'done' ? ` — ${formatMs(p.ms)}` : ' …'}
            </li>
          ))}
        </ol>
      ) : <p>No phase yet.</p>}
      <dl class="facts">
        {frozen !== null ? <><dt>Frozen</dt><dd data-fact="frozen">{formatMs(frozen)}</dd></> : null}
        {result?.snapshot ? <><dt>Snapshot</dt><dd><code>{result.snapshot}</code></dd></> : null}
        {result?.bytesWritten !== undefined ? <><dt>Written</dt><dd>{formatBytes(result.bytesWritten)}{result.logicalBytes !== undefined ? ` (${formatBytes(result.logicalBytes)} logical)` : ''}</dd></> : null}
        {result?.pid !== undefined && job?.kind === 'restore' ? <><dt>Restored pid</dt><dd data-fact="restored-pid">{result.pid}</dd></> : null}
        {job ? <><dt>Took</dt><dd>{formatMs(tookMs(job))}</dd></> : null}
      </dl>
      {job?.error ? <ErrorBox error={job.error} title={`Failed${job.error.phase ? ` in ${job.error.phase}` : ''}`} /> : null}
      <div class="charts">
        {tlSpec ? <Chart id="timeline" spec={tlSpec} caption="Phase timeline" /> : null}
        {charts.map(([cid, spec, caption]) => (spec ? <Chart key={cid} id={cid} spec={spec} caption={caption} /> : null))}
      </div>
      <details><summary>Event log ({live.log.length})</summary><ol class="log">{live.log.map((l, i) => <li key={i}>{l}</li>)}</ol></details>
    </div>
  );
}
