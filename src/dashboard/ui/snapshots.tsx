// Snapshots as chains (GET /v1/store, as `ferry snapshots ls`): parent links, logical vs stored
// bytes, tier, age; restore and delete, each behind a confirmation.
import { useState } from 'preact/hooks';
import { formatAge, formatBytes, snapshotChains, type SnapshotRow } from '../model.js';
import type { Api } from './api.js';
import { Confirm, ErrorBox, useLoad } from './common.js';

type Open = { kind: 'restore' | 'delete'; id: string } | undefined;

export function SnapshotsView({ api, tick, onJob }: { api: Api; tick: number; onJob: (id: string) => void }) {
  const listing = useLoad(() => api.client.listing(), [api, tick], 10_000);
  const [open, setOpen] = useState<Open>(undefined);
  const [done, setDone] = useState<string | undefined>(undefined);
  const now = Date.now();
  const l = listing.data;
  const chains = l ? snapshotChains(l.snapshots as SnapshotRow[]) : [];
  return (
    <section aria-labelledby="snapshots-h">
      <h2 id="snapshots-h">Snapshots</h2>
      <ErrorBox error={listing.error} title="Could not list the snapshots" />
      {done ? <p role="status" class="ok"><span aria-hidden="true">✔ </span>{done}</p> : null}
      {l ? (
        <>
          <p class="summary">
            {l.snapshots.length} snapshot{l.snapshots.length === 1 ? '' : 's'}: {formatBytes(l.totalLogicalBytes)} logical, {formatBytes(l.totalStoredBytes)} stored
            {' '}· memory tier {formatBytes(l.memoryTier.usedBytes)} used{l.memoryTier.budgetBytes !== null ? ` of ${formatBytes(l.memoryTier.budgetBytes)}` : ''}
            {l.damaged.length ? ` · ${l.damaged.length} damaged` : ''}{l.leftovers.length ? ` · ${l.leftovers.length} leftovers` : ''}
          </p>
          {chains.length ? (
            <div class="table-wrap">
              <table>
                <caption>Chains: each base, then the snapshots that build on it (indented)</caption>
                <thead><tr><th scope="col">Snapshot</th><th scope="col">Workload</th><th scope="col">Tier</th><th scope="col">Logical</th><th scope="col">Stored</th><th scope="col">Parent</th><th scope="col">Age</th><th scope="col">Actions</th></tr></thead>
                <tbody>
                  {chains.map(({ snapshot: s, depth, missingParent, children }) => (
                    <tr key={s.id} data-snapshot={s.id}>
                      <th scope="row" style={{ paddingLeft: `${0.5 + depth * 1.25}rem` }}>
                        {depth ? <span aria-hidden="true">└ </span> : null}<code>{s.id}</code>
                        {children ? <span class="small"> ({children} build{children === 1 ? 's' : ''} on it)</span> : null}
                      </th>
                      <td>{s.workload ?? (s.pid !== undefined ? `pid ${s.pid}` : '—')}</td>
                      <td>{s.tier}</td>
                      <td>{formatBytes(s.logicalBytes)}</td>
                      <td>{formatBytes(s.storedBytes)}{s.logicalBytes > 0 && s.storedBytes < s.logicalBytes ? <span class="small"> ({Math.round((100 * s.storedBytes) / s.logicalBytes)}%)</span> : null}</td>
                      <td>{s.parent ? <span><code>{s.parent}</code>{missingParent ? <strong> (missing!)</strong> : null}</span> : 'base'}</td>
                      <td>{formatAge(s.createdAt, now)}</td>
                      <td class="actions">
                        <button type="button" onClick={() => setOpen({ kind: 'restore', id: s.id })} aria-label={`Restore ${s.id}`}>Restore…</button>
                        <button type="button" class="danger" onClick={() => setOpen({ kind: 'delete', id: s.id })} aria-label={`Delete ${s.id}`}>Delete…</button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : <p>No snapshots in this store.</p>}
          {l.damaged.length ? (
            <details><summary>{l.damaged.length} damaged</summary><ul>{l.damaged.map((d) => <li key={d.id}><code>{d.id}</code>: {d.reason}</li>)}</ul></details>
          ) : null}
        </>
      ) : listing.loading ? <p>Loading…</p> : null}
      {open?.kind === 'restore' ? <RestoreDialog api={api} id={open.id} onClose={() => setOpen(undefined)} onJob={(j) => { setOpen(undefined); onJob(j); }} /> : null}
      {open?.kind === 'delete' ? (
        <Confirm title={`Delete ${open.id}`} confirmLabel="Delete" danger onClose={() => setOpen(undefined)} onConfirm={async () => {
          const r = await api.client.removeSnapshot(open.id);
          setOpen(undefined);
          setDone(`Deleted ${r.removed}`);
          listing.reload();
        }}>
          <p>The snapshot <code>{open.id}</code> is removed from the store; snapshots that build on it take over the pages they need. This cannot be undone.</p>
        </Confirm>
      ) : null}
    </section>
  );
}

function RestoreDialog({ api, id, onClose, onJob }: { api: Api; id: string; onClose: () => void; onJob: (job: string) => void }) {
  const [as, setAs] = useState('');
  return (
    <Confirm title={`Restore ${id}`} confirmLabel="Restore" onClose={onClose} onConfirm={async () => {
      const job = await api.client.restore({ snapshot: id, ...(as.trim() ? { as: as.trim() } : {}) });
      onJob(job.id);
    }}>
      <p>CRIU restores <code>{id}</code> on this host. Its processes need their pids free here (a workload started with <code>ferry run</code> has its own pid namespace).</p>
      <div class="field">
        <label for="rs-as">Restore as workload name (optional)</label>
        <input id="rs-as" type="text" value={as} onInput={(e) => setAs(e.currentTarget.value)} placeholder="the recorded name when empty" />
      </div>
    </Confirm>
  );
}
