import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toJson } from '@bufbuild/protobuf';
import { OptionsSchema } from './gen/criu-rpc_pb.js';
import { FIRST_EXTRA_CRIU_FD, toRpcOptions } from './options.js';

describe('toRpcOptions', () => {
  it('sets the images dir fd, log level 4 and the log file by default, and nothing else', () => {
    const { opts, extraFds } = toRpcOptions({ imagesDir: '/x' }, { imagesDirFd: 7 }, 'dump.log');
    assert.deepEqual(toJson(OptionsSchema, opts), { imagesDirFd: 7, logLevel: 4, logFile: 'dump.log' });
    assert.deepEqual(extraFds, []);
  });

  it('keeps "false" distinct from "unset"', () => {
    const { opts } = toRpcOptions({ imagesDir: '/x', leaveRunning: false }, { imagesDirFd: 3 }, 'l');
    assert.equal((toJson(OptionsSchema, opts) as Record<string, unknown>)['leaveRunning'], false);
    const unset = toRpcOptions({ imagesDir: '/x' }, { imagesDirFd: 3 }, 'l').opts;
    assert.equal('leaveRunning' in (toJson(OptionsSchema, unset) as object), false);
  });

  it('maps CRIU\'s vocabulary onto the RPC fields', () => {
    const { opts } = toRpcOptions({
      imagesDir: '/x', pid: 42, leaveRunning: true, tcpEstablished: true, extUnixSk: true, shellJob: true,
      fileLocks: true, parentImg: '../p', manageCgroupsMode: 'ignore', networkLock: 'nftables', emptyNs: ['net'],
      joinNs: [{ ns: 'net', nsFile: '/proc/1/ns/net' }], pageServer: { address: '10.0.0.2', port: 27 },
      preDumpMode: 'read', external: ['mnt[/a]:a'], timeoutS: 30,
    }, { imagesDirFd: 5, workDirFd: 6 }, 'dump.log');
    assert.deepEqual(toJson(OptionsSchema, opts), {
      imagesDirFd: 5, workDirFd: 6, pid: 42, leaveRunning: true, tcpEstablished: true, extUnixSk: true,
      shellJob: true, fileLocks: true, logLevel: 4, logFile: 'dump.log', parentImg: '../p',
      manageCgroups: false, manageCgroupsMode: 'CG_IGNORE', networkLock: 'NETWORK_LOCK_NFTABLES', emptyNs: 0x40000000,
      joinNs: [{ ns: 'net', nsFile: '/proc/1/ns/net' }], ps: { address: '10.0.0.2', port: 27 },
      preDumpMode: 'PRE_DUMP_VM_READ', external: ['mnt[/a]:a'], timeout: 30,
    });
  });

  it('numbers inherited fds as CRIU will see them (after stdio and the RPC socket)', () => {
    const { opts, extraFds } = toRpcOptions({
      imagesDir: '/x', inheritFds: [{ key: 'pipe:[1]', fd: 20 }, { key: 'extRootNetNS', fd: 21 }],
    }, { imagesDirFd: 5 }, 'restore.log');
    assert.deepEqual(extraFds, [20, 21]);
    assert.deepEqual(opts.inheritFd.map((f) => [f.key, f.fd]), [['pipe:[1]', FIRST_EXTRA_CRIU_FD], ['extRootNetNS', FIRST_EXTRA_CRIU_FD + 1]]);
  });
});
