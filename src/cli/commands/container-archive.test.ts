// container-archive's sources and destinations: transports by prefix, any other text a path.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { FerryError } from '../../util/errors.js';
import { parseDestination, parseSource } from './container-archive.js';

it('import sources: containers-storage:NAME, oci-archive:FILE, else a path (colons and all, as the kubelet names them)', () => {
  assert.deepEqual(parseSource('containers-storage:localhost/web:1'), { kind: 'containers-storage', ref: 'localhost/web:1' });
  assert.deepEqual(parseSource('oci-archive:/tmp/a.tar'), { kind: 'oci-archive', file: '/tmp/a.tar' });
  const kubelet = '/var/lib/kubelet/checkpoints/checkpoint-web_default-app-2024-02-29T18:28:17Z.tar';
  assert.deepEqual(parseSource(kubelet), { kind: 'file', file: kubelet });
  assert.throws(() => parseSource('containers-storage:'), (e: unknown) => e instanceof FerryError && e.code === 'ERR_USAGE');
});

it('export destinations: --to oci-archive:FILE | containers-storage, or a FILE; never both', () => {
  assert.deepEqual(parseDestination(undefined, undefined), { kind: 'containers-storage' });
  assert.deepEqual(parseDestination(undefined, 'x.tar'), { kind: 'oci-archive', file: 'x.tar' });
  assert.deepEqual(parseDestination('oci-archive:a:b.tar', undefined), { kind: 'oci-archive', file: 'a:b.tar' });
  assert.deepEqual(parseDestination('containers-storage', undefined), { kind: 'containers-storage' });
  for (const [to, file] of [['docker-daemon:x', undefined], ['oci-archive:', undefined], ['containers-storage', 'f.tar']] as const) {
    assert.throws(() => parseDestination(to, file), (e: unknown) => e instanceof FerryError && e.code === 'ERR_USAGE', `${to} ${file ?? ''}`);
  }
});
