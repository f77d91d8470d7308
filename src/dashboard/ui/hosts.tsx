// Hosts: this agent and the peers it knows (GET /v1/peers), each with its health now.
import type { Api } from './api.js';
import { ErrorBox, StateText, useLoad } from './common.js';

export function HostsView({ api, tick }: { api: Api; tick: number }) {
  const peers = useLoad(() => api.peers(), [api, tick], 5000);
  const d = peers.data;
  return (
    <section aria-labelledby="hosts-h">
      <h2 id="hosts-h">Hosts</h2>
      <ErrorBox error={peers.error} title="Could not list the hosts" />
      {d ? (
        <div class="table-wrap">
          <table>
            <caption>This agent and the {d.peers.length} peer{d.peers.length === 1 ? '' : 's'} it knows</caption>
            <thead><tr><th scope="col">Host</th><th scope="col">Agent</th><th scope="col">Status</th><th scope="col">Version</th><th scope="col">CRIU</th><th scope="col">Store</th></tr></thead>
            <tbody>
              <tr data-host={d.self.name}>
                <th scope="row">{d.self.name} <span class="tag">this agent</span></th>
                <td><code>{api.origin}</code></td>
                <td><StateText state="up" /></td>
                <td>{d.self.version}</td>
                <td>{d.self.criu ?? '—'}</td>
                <td><code>{d.self.store}</code></td>
              </tr>
              {d.peers.map((p) => (
                <tr key={p.name} data-host={p.name}>
                  <th scope="row">{p.name}</th>
                  <td><code>{p.url}</code></td>
                  <td><StateText state={p.ok ? 'up' : 'down'} />{p.error ? <div class="small">{p.error.code}: {p.error.message}</div> : null}</td>
                  <td>{p.version ?? '—'}</td>
                  <td>{p.criu ?? '—'}</td>
                  <td>{p.store ? <code>{p.store}</code> : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : peers.loading ? <p>Loading…</p> : null}
      {d && !d.peers.length ? <p class="small">No peers: start the agent with FERRY_PEERS=NAME=URL,… to list them (the testbed does).</p> : null}
    </section>
  );
}
