// The DaemonSet's manifests: the checked-in YAML is exactly what the typed objects render to
// (schema-validated on the way), the objects say what the agent needs, and the health probe
// they carry really answers — run against a real agent with a token.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readdir, readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_PORT } from '../../agent/listen.js';
import { PROJECT_ROOT } from '../../criu/binary.js';
import { agentListening } from '../../testing/agent-process.js';
import { AGENT_PORT, daemonSet } from './agent.js';
import { MANIFEST_FILES, renderManifests } from './render.js';

const DIR = join(PROJECT_ROOT, 'deploy', 'kubernetes');

describe('deploy/kubernetes', () => {
  it('the checked-in YAML is what src/deploy/kubernetes renders (rerun scripts/emit-kubernetes.mjs after a change)', async () => {
    const rendered = renderManifests();
    const onDisk = (await readdir(DIR)).filter((f) => f.endsWith('.yaml')).sort();
    assert.deepEqual(onDisk, [...rendered.keys()].sort(), 'deploy/kubernetes/ holds other files than the objects render');
    for (const [file, text] of rendered) {
      assert.equal(await readFile(join(DIR, file), 'utf8'), text, `deploy/kubernetes/${file} drifted from its source: run \`node_modules/.bin/tsc && node scripts/emit-kubernetes.mjs\``);
    }
  });

  it('every object is validated against the Kubernetes schema (a wrong one is refused, naming the field)', () => {
    for (const build of Object.values(MANIFEST_FILES)) for (const m of build()) m.validate();
    const bad = daemonSet();
    const c = bad.spec?.template.spec?.containers[0];
    assert.ok(c);
    delete (c as { name?: string }).name;
    (c as unknown as { ports: unknown }).ports = [{ containerPort: 'api' }];
    assert.throws(() => bad.validate(), /containers\/0 must have required property 'name'|containerPort must be integer/);
  });

  it('the DaemonSet: privileged, host pid and network, store on a hostPath, token from a Secret, node address, probes, scrape annotations', () => {
    const docs = [...renderManifests().values()].flatMap((t) => parseAllDocuments(t).map((d) => d.toJS() as { kind: string; spec?: unknown }));
    assert.deepEqual(docs.map((d) => d.kind), ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'DaemonSet']);
    const ds = daemonSet().toJSON() as ReturnType<typeof daemonSet>;
    const pod = ds.spec?.template.spec;
    const c = pod?.containers[0];
    assert.ok(pod && c);
    assert.equal(AGENT_PORT, DEFAULT_PORT, "the manifests' port is the agent's documented default");
    assert.equal(pod.hostPID, true);
    assert.equal(pod.hostNetwork, true);
    assert.equal(c.securityContext?.privileged, true);
    assert.deepEqual(c.env?.find((e) => e.name === 'HOST_IP')?.valueFrom?.fieldRef?.fieldPath, 'status.hostIP');
    assert.deepEqual(c.args?.slice(c.args.indexOf('--listen'), c.args.indexOf('--listen') + 2), ['--listen', `$(HOST_IP):${DEFAULT_PORT}`]);
    const tokenFile = c.args?.[c.args.indexOf('--token-file') + 1] ?? '';
    const tokenMount = c.volumeMounts?.find((m) => tokenFile.startsWith(`${m.mountPath}/`));
    assert.equal(pod.volumes?.find((v) => v.name === tokenMount?.name)?.secret?.secretName, 'ferry-agent-token');
    const storeMount = c.volumeMounts?.find((m) => m.mountPath === c.args?.[c.args.indexOf('--store') + 1]);
    assert.equal(pod.volumes?.find((v) => v.name === storeMount?.name)?.hostPath?.path, '/var/lib/ferry');
    assert.equal(ds.spec?.template.metadata?.annotations?.['prometheus.io/scrape'], 'true');
    assert.equal(ds.spec?.template.metadata?.annotations?.['prometheus.io/port'], String(DEFAULT_PORT));
    assert.ok(c.readinessProbe?.exec && c.livenessProbe?.exec, 'exec probes (the health route needs the token)');
  });

  it("the probe's command answers 0 against a real agent with its token, 1 with another token and with no agent", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-probe-'));
    const agent = spawn(join(PROJECT_ROOT, 'bin', 'ferry'), ['--store', join(dir, 'store'), 'agent', '--listen', '127.0.0.1:0', '--token-file', join(dir, 'token'), '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await writeFile(join(dir, 'token'), 'probe-token-0123456789abcdef\n');
      const probe = daemonSet().spec?.template.spec?.containers[0]?.livenessProbe?.exec?.command ?? [];
      assert.equal(probe[0], 'node');
      const url = new URL(await agentListening(agent));
      // The probe as written, pointed at this agent's port and this test's token file.
      const run = (token: string) => new Promise<number>((res) => {
        const script = (probe[2] ?? '').replace('/etc/ferry/token/token', token).replace(`:${AGENT_PORT}/`, `:${url.port}/`);
        execFile('node', ['-e', script], { env: { ...process.env, HOST_IP: url.hostname }, timeout: 10_000 }, (err) => res(err ? (typeof err.code === 'number' ? err.code : 99) : 0));
      });
      assert.equal(await run(join(dir, 'token')), 0, 'healthy agent, right token');
      await writeFile(join(dir, 'other'), 'some-other-token-0123456789\n');
      assert.equal(await run(join(dir, 'other')), 1, 'a wrong token is not healthy');
      agent.kill('SIGTERM');
      await new Promise((r) => agent.once('exit', r));
      assert.equal(await run(join(dir, 'token')), 1, 'no agent');
    } finally {
      agent.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
