// The OCI layout writer/reader, checkpoint annotations, kubelet archive names (no root, no podman).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FerryError } from '../util/errors.js';
import { checkpointAnnotations, checkpointNameOf, criuVersionNumber } from './checkpoint-annotations.js';
import { containerIdFor, kubernetesIdentity, parseKubeletArchiveName } from './kubelet.js';
import { blobPath, MEDIA, normalizeImageRef, REF_NAME, sha256, unpackOciArchive, writeOciArchive, type ImageIndex } from './layout.js';

describe('image names', () => {
  it('normalizes NAME[:TAG] the way Podman names local images', () => {
    assert.equal(normalizeImageRef('web'), 'localhost/web:latest');
    assert.equal(normalizeImageRef('web:1'), 'localhost/web:1');
    assert.equal(normalizeImageRef('team/web:v1.2'), 'localhost/team/web:v1.2');
    assert.equal(normalizeImageRef('localhost/web:1'), 'localhost/web:1');
    assert.equal(normalizeImageRef('registry.example.com:5000/a/b:x'), 'registry.example.com:5000/a/b:x');
  });
  it('refuses what is not a name, with the grammar', () => {
    for (const bad of ['Web', 'a b', '', 'web:', 'web@sha256:abc', '/web', 'web:-x', '../x']) {
      assert.throws(() => normalizeImageRef(bad), (e: unknown) => e instanceof FerryError && e.code === 'ERR_USAGE' && /is not an image name/.test(e.message), bad);
    }
  });
});

describe('checkpoint annotations', () => {
  const info = { name: 'web', rootfsImageName: 'localhost/bb:1', rootfsImageId: 'abc', runtime: 'runc', criuVersion: 'Version: 4.2.1', kernel: '6.18', arch: 'amd64', engineVersion: '0.1.0' };
  it("carry Podman's, CRI-O's and containerd's name keys, and CRIU's version as Podman's number", () => {
    const a = checkpointAnnotations(info);
    assert.equal(a['io.podman.annotations.checkpoint.name'], 'web');
    assert.equal(a['io.kubernetes.cri-o.annotations.checkpoint.name'], 'web');
    assert.equal(a['org.criu.checkpoint.container.name'], 'web');
    assert.equal(a['io.podman.annotations.checkpoint.criu.version'], '40201');
    assert.equal(a['io.podman.annotations.checkpoint.rootfsImageName'], 'localhost/bb:1');
    assert.equal(a['org.criu.checkpoint.engine.name'], 'ferry');
    assert.equal(a['org.criu.checkpoint.pod.name'], undefined, 'no empty annotations');
    assert.equal(checkpointNameOf(a), 'web');
  });
  it('recognizes a checkpoint image by any family, and a plain image by none', () => {
    assert.equal(checkpointNameOf({ 'org.criu.checkpoint.container.name': 'x' }), 'x');
    assert.equal(checkpointNameOf({ 'io.kubernetes.cri-o.annotations.checkpoint.name': 'y' }), 'y');
    assert.equal(checkpointNameOf({ 'org.opencontainers.image.base.name': '' }), undefined);
    assert.equal(checkpointNameOf(undefined), undefined);
    assert.equal(criuVersionNumber('3.17'), 31700);
    assert.equal(criuVersionNumber('none'), undefined);
  });
});

describe('kubelet archives', () => {
  it("parses the kubelet's archive names (pod and namespace split at '_', the RFC 3339 time at the end)", () => {
    assert.deepEqual(parseKubeletArchiveName('checkpoint-counter-deployment-ddbdd9dd6-m59ds_default-counter-2024-02-29T18:28:17Z.tar'),
      { pod: 'counter-deployment-ddbdd9dd6-m59ds', rest: 'default-counter', time: '2024-02-29T18:28:17Z' });
    assert.equal(parseKubeletArchiveName('checkpoint-a_b-c-2024-02-29T18:28:17+01:00.tar')?.time, '2024-02-29T18:28:17+01:00');
    assert.equal(parseKubeletArchiveName('dump.tar.gz'), undefined);
    assert.equal(parseKubeletArchiveName('checkpoint-nounderscore-2024-02-29T18:28:17Z.tar'), undefined);
  });
  it("reads who the container was from CRI-O's or containerd's annotations, and makes an unambiguous id", () => {
    const crio = { 'io.kubernetes.pod.name': 'web.v1-abc', 'io.kubernetes.pod.namespace': 'prod', 'io.kubernetes.container.name': 'app' };
    assert.deepEqual(kubernetesIdentity(crio), { pod: 'web.v1-abc', namespace: 'prod', container: 'app' });
    assert.deepEqual(kubernetesIdentity({ 'io.kubernetes.cri.sandbox-name': 'p', 'io.kubernetes.cri.sandbox-namespace': 'n', 'io.kubernetes.cri.container-name': 'c' }), { pod: 'p', namespace: 'n', container: 'c' });
    assert.equal(kubernetesIdentity({ 'io.kubernetes.pod.name': 'p' }), undefined);
    assert.equal(kubernetesIdentity(undefined), undefined);
    assert.equal(containerIdFor({ pod: 'web.v1-abc', namespace: 'prod', container: 'app' }), 'prod.web.v1-abc.app');
  });
});

describe('oci-archive', () => {
  async function withArchive(fn: (dir: string, file: string, index: ImageIndex, layer: Buffer) => Promise<void>): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-oci-unit-'));
    try {
      const layer = Buffer.from('pretend this is a tar'.repeat(100));
      await writeFile(join(dir, 'layer'), layer);
      const config = Buffer.from('{"os":"linux"}');
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: MEDIA.config, digest: sha256(config), size: config.length }, layers: [] }));
      const index: ImageIndex = { schemaVersion: 2, manifests: [{ mediaType: MEDIA.manifest, digest: sha256(manifest), size: manifest.length, annotations: { [REF_NAME]: 'localhost/x:1' } }] };
      const file = join(dir, 'image.tar');
      await writeOciArchive(file, index, [{ digest: sha256(config), body: config }, { digest: sha256(layer), path: join(dir, 'layer'), size: layer.length }, { digest: sha256(manifest), body: manifest }]);
      await fn(dir, file, index, layer);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  it('round-trips: what is written unpacks with every blob under its digest', async () => {
    await withArchive(async (dir, file, index, layer) => {
      const out = join(dir, 'out');
      assert.deepEqual(await unpackOciArchive(file, out), index);
      assert.deepEqual(await readFile(blobPath(out, sha256(layer))), layer);
      assert.deepEqual(JSON.parse(await readFile(join(out, 'oci-layout'), 'utf8')) as unknown, { imageLayoutVersion: '1.0.0' });
    });
  });
  it('refuses a blob that does not match its digest, and a tar that is no image layout', async () => {
    await withArchive(async (dir, file) => {
      const buf = await readFile(file);
      const at = buf.indexOf(Buffer.from('pretend'));
      buf[at] = 0x50; // 'P'
      await writeFile(join(dir, 'bad.tar'), buf);
      await assert.rejects(unpackOciArchive(join(dir, 'bad.tar'), join(dir, 'o1')), (e: unknown) => e instanceof FerryError && e.code === 'ERR_ARCHIVE_CORRUPT' && /does not match its digest/.test(e.message));
      await assert.rejects(unpackOciArchive(join(dir, 'layer'), join(dir, 'o2')), (e: unknown) => e instanceof FerryError && e.code === 'ERR_ARCHIVE_INVALID');
    });
  });
});
