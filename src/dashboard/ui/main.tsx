// The dashboard's page: asks for the agent's token (kept in this tab's sessionStorage only), then
// shows the views — hosts, workloads, snapshots, jobs, a migration — chosen by the URL's fragment
// (#jobs/j-…: the fragment never carries the token). Nothing is shown or done without the token.
import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Api, forgetToken, saveToken, savedToken } from './api.js';
import { ErrorBox } from './common.js';
import { HostsView } from './hosts.js';
import { JobsView } from './jobs.js';
import { MigrationView } from './migration.js';
import { SnapshotsView } from './snapshots.js';
import { WorkloadsView } from './workloads.js';

const VIEWS = [['hosts', 'Hosts'], ['workloads', 'Workloads'], ['snapshots', 'Snapshots'], ['jobs', 'Jobs'], ['migration', 'Migration']] as const;
type View = (typeof VIEWS)[number][0];

function route(): { view: View; id: string | undefined } {
  const [v, id] = location.hash.replace(/^#/, '').split('/');
  const view = VIEWS.some(([name]) => name === v) ? (v as View) : 'hosts';
  return { view, id: id && /^j-[0-9a-f]{16}$/.test(id) ? id : undefined };
}

function TokenForm({ onToken, error }: { onToken: (t: string) => Promise<void>; error: unknown }) {
  const [value, setValue] = useState('');
  const [busy, setBusy] = useState(false);
  return (
    <form class="token" onSubmit={(e) => {
      e.preventDefault();
      setBusy(true);
      void onToken(value.trim()).finally(() => setBusy(false));
    }}>
      <h2>Sign in to this agent</h2>
      <p>Every view and action needs the agent's token (the first line of its <code>--token-file</code>; on a testbed, the file <code>token</code> in its directory). It stays in this browser tab only.</p>
      <div class="field">
        <label for="token">Agent token</label>
        <input id="token" name="token" type="password" autocomplete="off" required value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      </div>
      <button type="submit" class="primary" disabled={busy || !value.trim()}>{busy ? 'Checking…' : 'Open the dashboard'}</button>
      <ErrorBox error={error} title="Not signed in" />
    </form>
  );
}

function App() {
  const [token, setToken] = useState<string | null>(savedToken());
  const [signInError, setSignInError] = useState<unknown>(undefined);
  const [where, setWhere] = useState(route());
  const [tick, setTick] = useState(0);
  const [health, setHealth] = useState<{ version: string; criu: string | null } | undefined>(undefined);
  const [healthError, setHealthError] = useState<unknown>(undefined);
  const api = useMemo(() => (token ? new Api(token) : undefined), [token]);

  useEffect(() => {
    const on = () => setWhere(route());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  // The agent's health on sign-in and on each refresh: an unreachable agent or a refused token shows at once.
  useEffect(() => {
    if (!api) return;
    api.client.health().then((h) => { setHealth({ version: h.version, criu: h.criu.version }); setHealthError(undefined); }, (err: unknown) => {
      if ((err as { code?: string }).code === 'ERR_UNAUTHORIZED') { forgetToken(); setToken(null); setSignInError(err); return; }
      setHealthError(err);
    });
  }, [api, tick]);

  const signIn = async (t: string) => {
    try {
      await new Api(t).client.health();
      saveToken(t);
      setSignInError(undefined);
      setToken(t);
    } catch (err) {
      setSignInError(err);
    }
  };
  const go = (view: View, id?: string) => { location.hash = id ? `${view}/${id}` : view; };

  return (
    <>
      <header>
        <h1>ferry <span class="sub">{location.host}</span></h1>
        {api ? (
          <div class="header-actions">
            {health ? <span class="small">agent {health.version} · CRIU {health.criu ?? 'not found'}</span> : null}
            <button type="button" onClick={() => setTick((t) => t + 1)}>Refresh</button>
            <button type="button" onClick={() => { forgetToken(); setToken(null); setHealth(undefined); }}>Sign out</button>
          </div>
        ) : null}
      </header>
      {api ? (
        <>
          <nav aria-label="Views">
            <ul>
              {VIEWS.map(([v, label]) => <li key={v}><a href={`#${v}`} aria-current={where.view === v ? 'page' : undefined}>{label}</a></li>)}
            </ul>
          </nav>
          <main>
            <ErrorBox error={healthError} title="The agent does not answer" />
            {where.view === 'hosts' ? <HostsView api={api} tick={tick} /> : null}
            {where.view === 'workloads' ? <WorkloadsView api={api} tick={tick} onJob={(id, kind) => go(kind === 'migrate' ? 'migration' : 'jobs', id)} /> : null}
            {where.view === 'snapshots' ? <SnapshotsView api={api} tick={tick} onJob={(id) => go('jobs', id)} /> : null}
            {where.view === 'jobs' ? <JobsView api={api} tick={tick} selected={where.id} onSelect={(id) => go('jobs', id)} /> : null}
            {where.view === 'migration' ? <MigrationView api={api} tick={tick} selected={where.id} onSelect={(id) => go('migration', id)} /> : null}
          </main>
        </>
      ) : <main><TokenForm onToken={signIn} error={signInError} /></main>}
    </>
  );
}

render(<App />, document.getElementById('app')!);
