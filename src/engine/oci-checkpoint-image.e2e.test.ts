// Checkpoint OCI images and kubelet archives with Debian's Podman 4.3.1 (runtime runc: Debian's
// crun lacks CRIU), both ways, each ending in a restored container whose state is verified:
//   ferry checkpoint → export --oci-image → `podman container restore IMAGE`
//   `podman container checkpoint --create-image` → ferry import (containers-storage, oci-archive) → ferry restore
//   `podman container checkpoint --export` named and laid out as the kubelet's → ferry import → ferry restore
// The state is a shell loop's counter, held in the process's memory and written to /tmp/counter
// in its rootfs: a restored container goes on from where it was checkpointed, a restarted one
// begins at 1. Nothing is pulled: the image is Debian's busybox rootfs (scripts/build-bundles.sh),
// imported into containers-storage.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../criu/binary.js';
import { containerTestsBlocked, removeContainer, startContainer } from '../testing/containers.js';
import { waitFor } from '../testing/processes.js';

const FERRY = join(PROJECT_ROOT, 'bin', 'ferry');
const BUSYBOX = join(PROJECT_ROOT, '.deps', 'bundles', 'busybox');
interface Ran { code: number; stdout: string; stderr: string }

/** Polls an async condition every 50 ms; fails after `ms`. */
async function until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const tag = Math.random().toString(36).slice(2, 8);
const blocked = containerTestsBlocked() ?? (existsSync('/usr/bin/podman') ? undefined : 'podman is not installed (make setup installs it)');
// (written aside and renamed: a reader never sees the file empty, half-way through a write)
const LOOP = 'i=0; while true; do i=$((i+1)); echo $i > /tmp/counter.tmp; mv /tmp/counter.tmp /tmp/counter; sleep 0.05; done';
// Podman's defaults that fail here: RLIMIT_NOFILE/NPROC above this machine's hard limits (no
// CAP_SYS_RESOURCE); its network (none: nothing to restore).
const PODMAN_RUN = ['run', '-d', '--runtime', 'runc', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096'];

describe('checkpoint OCI images and kubelet archives (podman ↔ ferry)', { skip: blocked }, () => {
  const env = { ...process.env, PATH: `${join(PROJECT_ROOT, '.deps', 'criu', 'sbin')}:${process.env['PATH'] ?? ''}` };
  const sh = (cmd: string, args: string[]): Promise<Ran> => new Promise((res) => execFile(cmd, args, { env, timeout: 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
    res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr })));
  const must = async (cmd: string, args: string[]): Promise<string> => {
    const r = await sh(cmd, args);
    assert.equal(r.code, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  let base: string;
  let store: string;
  const ferry = (args: string[]) => sh(FERRY, ['--store', store, ...args]);
  const ok = async (args: string[]) => must(FERRY, ['--store', store, ...args]);
  const image = `localhost/ferry-oci-busybox:${tag}`;
  let imageId: string;
  const podmanContainers: string[] = [];
  const podmanImages: string[] = [image];
  const runcContainers: string[] = [];
  const counterOf = async (cmd: string, id: string): Promise<number> => Number((await must(cmd, ['exec', id, 'cat', '/tmp/counter'])).trim());
  /** The counter after it moved on twice: proof the restored process runs, and where it began. */
  async function countsOn(cmd: string, id: string): Promise<{ first: number; later: number }> {
    let first = NaN;
    await until(async () => { first = await counterOf(cmd, id).catch(() => NaN); return Number.isFinite(first); }, 5000, `${id}'s counter`);
    let later = first;
    await until(async () => { later = await counterOf(cmd, id).catch(() => later); return later >= first + 2; }, 5000, `${id} to count on`);
    return { first, later };
  }
  /** A podman container counting, past 5. */
  async function podmanCounter(name: string, extra: string[] = []): Promise<void> {
    podmanContainers.push(name);
    await must('podman', [...PODMAN_RUN, ...extra, '--name', name, image, '/bin/sh', '-c', LOOP]);
    await until(async () => (await counterOf('podman', name).catch(() => 0)) > 5, 5000, `${name} to count`);
  }
  /** A bundle for the image's files (a copy: mode 0555 root, as containers-storage makes image roots). */
  async function bundleCopy(name: string): Promise<string> {
    const dir = join(base, name);
    await must('cp', ['-a', BUSYBOX, dir]);
    await chmod(join(dir, 'rootfs'), 0o555);
    return dir;
  }

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-oci-'));
    store = join(base, 'store');
    await must('bash', ['-c', `tar -C "${join(BUSYBOX, 'rootfs')}" -c . | podman import - ${image}`]);
    imageId = (await must('podman', ['image', 'inspect', image, '--format', '{{.Id}}'])).trim();
  });
  after(async () => {
    for (const n of podmanContainers) await sh('podman', ['rm', '-f', '-t', '0', n]); // (no stop timeout: sh as pid 1 ignores SIGTERM)
    for (const id of runcContainers) await removeContainer('runc', id);
    for (const i of podmanImages) await sh('podman', ['rmi', '-f', i]);
    await rm(base, { recursive: true, force: true });
  });

  it('ferry checkpoint → export --oci-image (containers-storage, oci-archive) → podman container restore IMAGE: it counts on', async () => {
    const id = `ferry-oci-src-${tag}`;
    runcContainers.push(id);
    const bundle = await bundleCopy('src-bundle');
    const config = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { root: { path: string }; process: { args: string[] } };
    config.root.path = join(bundle, 'rootfs');
    config.process.args = ['/bin/sh', '-c', LOOP];
    await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
    await startContainer('runc', id, bundle, join(base, 'src-logs'));
    const counterFile = join(bundle, 'rootfs', 'tmp', 'counter');
    await waitFor(() => existsSync(counterFile) && Number(readFileSync(counterFile, 'utf8')) > 5, 5000, 'the runc container to count');
    const snap = (await ok(['checkpoint', `container:${id}`])).trim();
    const atCheckpoint = Number(readFileSync(counterFile, 'utf8'));

    // Into containers-storage: podman sees a checkpoint image with its annotations.
    const ckptImage = `localhost/ferry-ckpt:${tag}`;
    podmanImages.push(ckptImage);
    const r = JSON.parse(await ok(['container-archive', 'export', snap, '--oci-image', `ferry-ckpt:${tag}`, '--to', 'containers-storage', '--image', image, '--image-id', imageId, '--json'])) as {
      ref: string; imageId: string; layer: { mediaType: string };
    };
    assert.equal(r.ref, ckptImage);
    assert.equal(r.layer.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
    const annotations = JSON.parse(await must('podman', ['image', 'inspect', ckptImage, '--format', '{{json .Annotations}}'])) as Record<string, string>;
    assert.equal(annotations['io.podman.annotations.checkpoint.name'], id);
    assert.equal(annotations['io.kubernetes.cri-o.annotations.checkpoint.name'], id);
    assert.equal(annotations['org.criu.checkpoint.container.name'], id);
    assert.equal(annotations['io.podman.annotations.checkpoint.rootfsImageName'], image);

    // An oci-archive file: podman's own loader reads it (a second name for the same image).
    const file = join(base, 'ferry-ckpt.oci.tar');
    await ok(['container-archive', 'export', snap, '--oci-image', `ferry-ckpt-file:${tag}`, '--to', `oci-archive:${file}`, '--compress', 'none', '--image', image, '--image-id', imageId]);
    podmanImages.push(`localhost/ferry-ckpt-file:${tag}`);
    await must('podman', ['image', 'load', '--input', file]);
    assert.match(await must('podman', ['image', 'inspect', `localhost/ferry-ckpt-file:${tag}`, '--format', '{{json .Annotations}}']), new RegExp(`"io.podman.annotations.checkpoint.name":"${id}"`));

    const name = `ferry-oci-restored-${tag}`;
    podmanContainers.push(name);
    // Podman restores a checkpoint image only with the runtime its runtime.name annotation names
    // (runc here: the checkpoint is runc's; Podman's own default is crun).
    await must('podman', ['--runtime', 'runc', 'container', 'restore', '--name', name, ckptImage]);
    const { first, later } = await countsOn('podman', name);
    assert.ok(first >= atCheckpoint, `podman's restored container counts from ${first}, but ferry checkpointed it at ${atCheckpoint}: it started afresh`);
    assert.ok(later > first);
  });

  it('podman container checkpoint --create-image → ferry import (containers-storage:NAME and its oci-archive) → ferry restore: it counts on', async () => {
    const name = `ferry-oci-pod-${tag}`;
    await podmanCounter(name);
    const before = await counterOf('podman', name);
    const ckptImage = `localhost/ferry-podman-ckpt:${tag}`;
    podmanImages.push(ckptImage);
    // --leave-running: the podman container keeps its bind-mount sources (/run/.containerenv, shm).
    await must('podman', ['container', 'checkpoint', '--leave-running', '--create-image', ckptImage, name]);

    // The same image saved as an oci-archive is read too, and says the same.
    const file = join(base, 'podman-ckpt.oci.tar');
    await must('podman', ['image', 'save', '--format', 'oci-archive', '--output', file, ckptImage]);
    const fromFile = JSON.parse(await ok(['container-archive', 'import', file, '--json'])) as { image: { checkpointName: string; ref: string } };
    assert.equal(fromFile.image.checkpointName, name);
    assert.equal(fromFile.image.ref, ckptImage);

    const bundle = await bundleCopy('from-image-bundle');
    const imp = JSON.parse(await ok(['container-archive', 'import', `containers-storage:${ckptImage}`, '--bundle', bundle, '--json'])) as {
      snapshot: string; source: string; container: string; image: { checkpointName: string; layers: number };
    };
    assert.equal(imp.source, 'podman');
    assert.equal(imp.container, name);
    assert.deepEqual([imp.image.checkpointName, imp.image.layers], [name, 1]);
    const clone = `ferry-oci-clone-${tag}`;
    runcContainers.push(clone);
    await ok(['restore', imp.snapshot, '--as', `container:${clone}`]);
    const { first, later } = await countsOn('runc', clone);
    assert.ok(first >= before, `the clone counts from ${first}, but the podman container was at ${before} before the checkpoint: it restarted`);
    assert.ok(later > first);
  });

  it('a kubelet-style archive (podman --export, plain tar, checkpoint-<pod>_<ns>-<ctr>-<time>.tar) → ferry import → restore: it counts on', async () => {
    const name = `ferry-oci-kubelet-${tag}`;
    // What the kubelet's pods carry in their spec (CRI-O puts these annotations there).
    await podmanCounter(name, ['--annotation', 'io.kubernetes.pod.name=counter-7d9f', '--annotation', 'io.kubernetes.pod.namespace=default', '--annotation', 'io.kubernetes.container.name=counter']);
    const before = await counterOf('podman', name);
    const file = join(base, 'checkpoint-counter-7d9f_default-counter-2026-12-01T20:00:00Z.tar');
    await must('podman', ['container', 'checkpoint', '--leave-running', '--export', file, '--compress', 'none', name]);
    const bundle = await bundleCopy('kubelet-bundle');
    const imp = JSON.parse(await ok(['container-archive', 'import', file, '--bundle', bundle, '--json'])) as {
      snapshot: string; container: string; kubernetes: { pod: string; namespace: string; container: string }; kubeletArchive: { pod: string; time: string };
    };
    assert.deepEqual(imp.kubernetes, { pod: 'counter-7d9f', namespace: 'default', container: 'counter' });
    assert.deepEqual(imp.kubeletArchive, { pod: 'counter-7d9f', time: '2026-12-01T20:00:00Z' });
    assert.equal(imp.container, 'default.counter-7d9f.counter');
    // The engine's own members are kept: exported again, the archive has Podman's config.dump
    // (not ferry's), and its extras (what Podman or CRI-O restore from).
    const again = join(base, 'again.tar');
    const exp = JSON.parse(await ok(['container-archive', 'export', imp.snapshot, again, '--compress', 'none', '--json'])) as { members: string[] };
    for (const m of ['config.dump', 'spec.dump', 'network.status', 'ctr.log', 'checkpoint/pages-1.img']) assert.ok(exp.members.includes(m), `the re-export lacks ${m}: ${exp.members.join(' ')}`);
    assert.ok(!exp.members.some((m) => m.includes('archive.')), 'kept members go back under their own names');
    const config = JSON.parse(await must('tar', ['-xOf', again, 'config.dump'])) as Record<string, unknown>;
    assert.equal(config['name'], name, "Podman's config.dump, as Podman wrote it");
    assert.ok('CreateCommand' in config && !('ferrySnapshot' in config));
    // As an image without --image: the base image comes from that kept config.dump.
    const img = JSON.parse(await ok(['container-archive', 'export', imp.snapshot, '--oci-image', `ferry-kubelet:${tag}`, '--to', `oci-archive:${join(base, 'kubelet.oci.tar')}`, '--json'])) as {
      rootfsImage: string; annotations: Record<string, string>;
    };
    assert.equal(img.rootfsImage, image);
    assert.equal(img.annotations['io.kubernetes.cri-o.annotations.checkpoint.rootfsImageName'], image);
    assert.equal(img.annotations['org.criu.checkpoint.container.name'], 'default.counter-7d9f.counter');
    const clone = `ferry-oci-kclone-${tag}`;
    runcContainers.push(clone);
    await ok(['restore', imp.snapshot, '--as', `container:${clone}`]);
    const { first, later } = await countsOn('runc', clone);
    assert.ok(first >= before, `the clone counts from ${first}, but the container was at ${before} before the checkpoint: it restarted`);
    assert.ok(later > first);
  });

  it('refuses an image that is not a checkpoint image, a damaged oci-archive, and an unknown name — clearly, nothing stored', async () => {
    const plain = join(base, 'plain.oci.tar');
    await must('podman', ['image', 'save', '--format', 'oci-archive', '--output', plain, image]);
    const notCkpt = await ferry(['container-archive', 'import', plain]);
    assert.equal(notCkpt.code, 1);
    assert.match(notCkpt.stderr, /is an image, but not a checkpoint image: its manifest has none of the checkpoint annotations/);

    const file = join(base, 'podman-ckpt.oci.tar');
    const buf = readFileSync(file);
    const at = buf.indexOf(Buffer.from('blobs/sha256/')) + 512 + 100; // inside the first blob
    buf[at] = (buf[at] ?? 0) ^ 0xff;
    const damaged = join(base, 'damaged.oci.tar');
    await writeFile(damaged, buf);
    const bad = await ferry(['container-archive', 'import', damaged]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /does not match its digest|not a readable OCI archive|is not JSON/);

    const none = await ferry(['container-archive', 'import', `containers-storage:localhost/no-such-image:${tag}`]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /containers-storage has no image named localhost\/no-such-image/);
    const ls = JSON.parse((await ferry(['snapshots', 'ls', '--json'])).stdout) as { snapshots: unknown[]; leftovers: unknown[] };
    assert.equal(ls.snapshots.length, 4, 'the checkpoint and the three imports above, none from the refusals');
    assert.deepEqual(ls.leftovers, []);
  });
});
