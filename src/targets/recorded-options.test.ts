import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dumpCriuOptions, recordOptions, restoreCriuOptions, runcFlags, runcUnsupported } from './recorded-options.js';
import { parseTargetRef } from './drivers.js';

describe('recorded options: the one mapping to CRIU options and runc flags', () => {
  it('records only what was asked for, and maps it for dump and restore', () => {
    const o = recordOptions({ tcpEstablished: true, ghostLimit: 1 << 20, external: ['mnt[/data]:data'], forceIrmap: false });
    assert.deepEqual(o, { tcpEstablished: true, extUnixSk: false, fileLocks: false, shellJob: false, ghostLimit: 1 << 20, external: ['mnt[/data]:data'] });
    assert.deepEqual(dumpCriuOptions(o), { tcpEstablished: true, external: ['mnt[/data]:data'], ghostLimit: 1 << 20 });
    // ghost-limit is a dump-time option; tcp-established and externals are needed again at restore.
    assert.deepEqual(restoreCriuOptions(o), { tcpEstablished: true, external: ['mnt[/data]:data'] });
    assert.deepEqual(restoreCriuOptions(o, { tcpClose: true }), { tcpEstablished: true, external: ['mnt[/data]:data'], tcpClose: true });
  });

  it('unset stays unset: no option means CRIU\'s default, never an explicit false', () => {
    const none = recordOptions({});
    assert.deepEqual(dumpCriuOptions(none), {});
    assert.deepEqual(restoreCriuOptions(none), {});
  });

  it('runc gets the flags it has, and what it lacks is named', () => {
    const o = recordOptions({ tcpEstablished: true, fileLocks: true, shellJob: true, linkRemap: true });
    assert.deepEqual(runcFlags(o), ['--tcp-established', '--file-locks', '--shell-job']);
    assert.deepEqual(runcUnsupported(o, { tcpClose: true }), ['--link-remap', '--tcp-close']);
  });
});

describe('target references', () => {
  it('a pid, a workload name, a container with its runtime', () => {
    assert.deepEqual(parseTargetRef('123'), { kind: 'process', pid: 123 });
    assert.deepEqual(parseTargetRef(7), { kind: 'process', pid: 7 });
    assert.deepEqual(parseTargetRef('web'), { kind: 'workload', name: 'web' });
    assert.deepEqual(parseTargetRef('container:db', { runtime: 'crun', runtimeRoot: '/run/x' }), { kind: 'container', id: 'db', runtime: 'crun', runtimeRoot: '/run/x' });
  });
  it('refuses what cannot be a target, with the reason', () => {
    assert.throws(() => parseTargetRef('container:db', { runtime: 'docker' }), /--runtime must be runc or crun/);
    assert.throws(() => parseTargetRef('web', { runtime: 'runc' }), /apply to container:<id> targets only/);
    assert.throws(() => parseTargetRef('container:../x'), /not a valid container target/);
  });
});
