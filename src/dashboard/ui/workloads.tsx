// Workloads (GET /v1/workloads, as `ferry ps`): state, pid, service address; checkpoint and
// migrate them, each behind a confirmation. A migration's preflight verdict is shown before
// anything can be frozen: "Migrate now" is enabled only by a passing preflight of the same choices.
import { useState } from 'preact/hooks';
import type { WorkloadStatus } from '../../targets/workload-status.js';
import type { DryRunResult } from '../../migrate/dry-run.js';
import { formatAge, formatBytes } from '../model.js';
import { STRATEGIES, STRATEGY_HINT, type Api, type MigrateForm } from './api.js';
import { Confirm, ErrorBox, StateText, useLoad } from './common.js';

type Open = { kind: 'checkpoint' | 'migrate'; workload: WorkloadStatus } | undefined;

export function WorkloadsView({ api, tick, onJob }: { api: Api; tick: number; onJob: (id: string, kind: 'checkpoint' | 'migrate') => void }) {
  const list = useLoad(() => api.client.workloadListing(), [api, tick], 5000);
  const [open, setOpen] = useState<Open>(undefined);
  const now = Date.now();
  const rows = list.data?.workloads ?? [];
  return (
    <section aria-labelledby="workloads-h">
      <h2 id="workloads-h">Workloads</h2>
      <ErrorBox error={list.error} title="Could not list the workloads" />
      {list.data ? (
        rows.length ? (
          <div class="table-wrap">
            <table>
              <caption>Workloads started with <code>ferry run</code> on this host</caption>
              <thead><tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">PID</th><th scope="col">Service address</th><th scope="col">Last snapshot</th><th scope="col">Started</th><th scope="col">Actions</th></tr></thead>
              <tbody>
                {rows.map((w) => (
                  <tr key={w.name} data-workload={w.name}>
                    <th scope="row">{w.name}<div class="small"><code>{w.command.join(' ').slice(0, 60)}</code></div></th>
                    <td><StateText state={w.state} /></td>
                    <td>{w.pid}</td>
                    <td>{w.address ? <span>{w.address.address}/{w.address.prefix} <span class="small">({w.address.state})</span></span> : '—'}</td>
                    <td>{w.lastSnapshot ? <code>{w.lastSnapshot}</code> : '—'}</td>
                    <td>{formatAge(w.restoredAt ?? w.startedAt, now)}</td>
                    <td class="actions">
                      <button type="button" disabled={w.state !== 'running'} onClick={() => setOpen({ kind: 'checkpoint', workload: w })} aria-label={`Checkpoint ${w.name}`}>Checkpoint…</button>
                      <button type="button" disabled={w.state !== 'running'} onClick={() => setOpen({ kind: 'migrate', workload: w })} aria-label={`Migrate ${w.name}`}>Migrate…</button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : <p>No workloads here. Start one with <code>ferry run --name NAME -- COMMAND</code>.</p>
      ) : list.loading ? <p>Loading…</p> : null}
      {open?.kind === 'checkpoint' ? <CheckpointDialog api={api} workload={open.workload} onClose={() => setOpen(undefined)} onJob={(id) => { setOpen(undefined); onJob(id, 'checkpoint'); }} /> : null}
      {open?.kind === 'migrate' ? <MigrateDialog api={api} workload={open.workload} onClose={() => setOpen(undefined)} onJob={(id) => { setOpen(undefined); onJob(id, 'migrate'); }} /> : null}
    </section>
  );
}

function CheckpointDialog({ api, workload, onClose, onJob }: { api: Api; workload: WorkloadStatus; onClose: () => void; onJob: (id: string) => void }) {
  const [tier, setTier] = useState<'memory' | 'disk'>('disk');
  const [leaveRunning, setLeaveRunning] = useState(true);
  const [name, setName] = useState('');
  return (
    <Confirm title={`Checkpoint ${workload.name}`} confirmLabel="Checkpoint" onClose={onClose} onConfirm={async () => {
      const job = await api.client.checkpoint({ target: workload.name, tier, leaveRunning, ...(name.trim() ? { name: name.trim() } : {}) });
      onJob(job.id);
    }}>
      <p>CRIU freezes <strong>{workload.name}</strong> (pid {workload.pid}) while it dumps it into this host's store.</p>
      <div class="field">
        <label for="cp-tier">Store tier</label>
        <select id="cp-tier" value={tier} onChange={(e) => setTier((e.currentTarget.value === 'memory' ? 'memory' : 'disk'))}>
          <option value="disk">disk</option>
          <option value="memory">memory (RAM, /dev/shm)</option>
        </select>
      </div>
      <div class="field">
        <label for="cp-name">Snapshot name (optional)</label>
        <input id="cp-name" type="text" value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="generated when empty" />
      </div>
      <div class="field check">
        <input id="cp-leave" type="checkbox" checked={leaveRunning} onChange={(e) => setLeaveRunning(e.currentTarget.checked)} />
        <label for="cp-leave">Leave the workload running after the dump (otherwise it ends once its snapshot is safe)</label>
      </div>
    </Confirm>
  );
}

function Verdict({ v, peer }: { v: DryRunResult; peer: string }) {
  return (
    <div class="verdict" role="status">
      <p><strong><span aria-hidden="true">✔ </span>Preflight passed:</strong> {peer} ({v.destination.host}) can take {v.target.label}.</p>
      <ul>
        <li>Strategy <strong>{v.strategy.strategy}</strong>: {v.strategy.because}</li>
        <li>About {formatBytes(v.bytes)} to move ({v.target.pids} process{v.target.pids === 1 ? '' : 'es'}{v.target.ownPidNamespace ? ', own pid namespace' : ''})</li>
        <li>CRIU {v.source.criuVersion} here, {v.destination.criuVersion} there; images into its {v.destination.tier} tier</li>
        {v.address ? <li>The service address {v.address.address}/{v.address.prefix} moves with it</li> : null}
        <li>Nothing was frozen (checked in {v.ms} ms)</li>
      </ul>
    </div>
  );
}

function MigrateDialog({ api, workload, onClose, onJob }: { api: Api; workload: WorkloadStatus; onClose: () => void; onJob: (id: string) => void }) {
  const peers = useLoad(() => api.peers(), [api]);
  const candidates = peers.data?.peers ?? [];
  const [dest, setDest] = useState('');
  const [strategy, setStrategy] = useState<MigrateForm['strategy']>('auto');
  const [tier, setTier] = useState<'memory' | 'disk'>('memory');
  const [tcp, setTcp] = useState(false);
  const [destToken, setDestToken] = useState('');
  const [verdict, setVerdict] = useState<{ key: string; result?: DryRunResult; error?: unknown } | undefined>(undefined);
  const [checking, setChecking] = useState(false);
  const chosen = candidates.find((p) => p.name === (dest || candidates.find((c) => c.ok)?.name));
  const form: MigrateForm | undefined = chosen ? {
    target: workload.name, to: { url: chosen.url, name: chosen.name, ...(destToken ? { token: destToken } : {}) }, strategy, tier, tcpEstablished: tcp,
  } : undefined;
  const key = JSON.stringify(form ?? null);
  const passed = verdict?.key === key && verdict.result !== undefined;
  const check = async () => {
    if (!form) return;
    setChecking(true);
    try {
      setVerdict({ key, result: await api.preflight(form) });
    } catch (error) {
      setVerdict({ key, error });
    } finally {
      setChecking(false);
    }
  };
  return (
    <Confirm title={`Migrate ${workload.name}`} confirmLabel="Migrate now" canConfirm={passed} onClose={onClose} onConfirm={async () => {
      if (!form || !passed) return;
      onJob((await api.migrate(form)).id);
    }}>
      <p>Moves <strong>{workload.name}</strong> (pid {workload.pid}) to another host: frozen here, dumped, sent, restored there; it runs there once the destination holds a verified copy, and runs on here if anything fails before that.</p>
      <ErrorBox error={peers.error} title="Could not list the destinations" />
      <div class="field">
        <label for="mg-dest">Destination</label>
        <select id="mg-dest" value={chosen?.name ?? ''} onChange={(e) => setDest(e.currentTarget.value)}>
          {candidates.length ? null : <option value="">(no peers known)</option>}
          {candidates.map((p) => <option key={p.name} value={p.name} disabled={!p.ok}>{p.name} — {p.url}{p.ok ? '' : ' (down)'}</option>)}
        </select>
      </div>
      <div class="field">
        <label for="mg-strategy">Strategy</label>
        <select id="mg-strategy" value={strategy} onChange={(e) => setStrategy(e.currentTarget.value as MigrateForm['strategy'])}>
          {STRATEGIES.map((s) => <option key={s} value={s}>{s} ({STRATEGY_HINT[s]})</option>)}
        </select>
      </div>
      <div class="field">
        <label for="mg-tier">Destination tier</label>
        <select id="mg-tier" value={tier} onChange={(e) => setTier(e.currentTarget.value === 'disk' ? 'disk' : 'memory')}>
          <option value="memory">memory</option>
          <option value="disk">disk</option>
        </select>
      </div>
      <div class="field check">
        <input id="mg-tcp" type="checkbox" checked={tcp} onChange={(e) => setTcp(e.currentTarget.checked)} />
        <label for="mg-tcp">Keep established TCP connections (--tcp-established)</label>
      </div>
      <div class="field">
        <label for="mg-token">Destination's token (empty: this page's token)</label>
        <input id="mg-token" type="password" autocomplete="off" value={destToken} onInput={(e) => setDestToken(e.currentTarget.value)} />
      </div>
      <p><button type="button" onClick={() => void check()} disabled={!form || checking}>{checking ? 'Checking…' : 'Run preflight (nothing is frozen)'}</button></p>
      {verdict?.key === key && verdict.result ? <Verdict v={verdict.result} peer={chosen?.name ?? '?'} /> : null}
      {verdict?.key === key && verdict.error !== undefined ? <ErrorBox error={verdict.error} title="Preflight refused" /> : null}
      {!passed ? <p class="small">“Migrate now” is enabled once the preflight passes for these choices.</p> : null}
    </Confirm>
  );
}
