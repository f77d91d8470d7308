/**
 * For tests: two network namespaces of their own, joined by a veth pair, on a private /24 that
 * no route of the machine uses; and a TCP echo server and client run inside them. Everything is
 * entered with `nsenter --net=` (never `ip netns exec`, whose extra mount namespace breaks CRIU).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface NetnsPair {
  /** Namespace names (`/run/netns/NAME`). */
  a: string;
  b: string;
  devA: string;
  devB: string;
  /** The first three octets of the /24, e.g. `10.253.17`. */
  net: string;
  addrA: string;
  addrB: string;
  /** Address `n` of the subnet (`${net}.${n}`), for service addresses. */
  at(n: number): string;
  cleanup(): Promise<void>;
}

/** Runs a command with a 10 s watchdog; rejects on a non-zero exit with its stderr. */
export function sh(cmd: string, args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

export function inNetns(ns: string, cmd: string, args: string[], timeoutMs?: number): Promise<string> {
  return sh('nsenter', [`--net=/run/netns/${ns}`, '--', cmd, ...args], timeoutMs);
}

/** A 10.253.X.0/24 that no route of the machine (any table) overlaps. */
async function freeSubnet(): Promise<string> {
  const routes = await sh('ip', ['-4', 'route', 'show', 'table', 'all']);
  const used = new Set([...routes.matchAll(/\b10\.253\.(\d+)\./g)].map((m) => m[1]));
  if (/^(?:\S+ )?10\.0\.0\.0\/8 |^(?:\S+ )?10\.253\.0\.0\/16 /m.test(routes)) throw new Error('10.253.0.0/16 is routed on this machine; pick another test range');
  for (let tries = 0; tries < 100; tries++) {
    const x = 1 + (randomBytes(1)[0]! % 254);
    if (!used.has(String(x))) return `10.253.${x}`;
  }
  throw new Error('no free 10.253.X.0/24');
}

export async function makeNetnsPair(tag: string): Promise<NetnsPair> {
  const id = randomBytes(3).toString('hex');
  const a = `fx-${tag}-${id}-a`;
  const b = `fx-${tag}-${id}-b`;
  // Interface names are at most 15 bytes.
  const devA = `fx${id}a`;
  const devB = `fx${id}b`;
  const net = await freeSubnet();
  const cleanup = async (): Promise<void> => {
    for (const ns of [a, b]) await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
    await sh('ip', ['link', 'del', devA]).catch(() => undefined);
  };
  try {
    await sh('ip', ['netns', 'add', a]);
    await sh('ip', ['netns', 'add', b]);
    await sh('ip', ['link', 'add', devA, 'type', 'veth', 'peer', 'name', devB]);
    await sh('ip', ['link', 'set', devA, 'netns', a]);
    await sh('ip', ['link', 'set', devB, 'netns', b]);
    for (const [ns, dev, host] of [[a, devA, 1], [b, devB, 2]] as const) {
      await sh('ip', ['-n', ns, 'addr', 'add', `${net}.${host}/24`, 'dev', dev]);
      await sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { a, b, devA, devB, net, addrA: `${net}.1`, addrB: `${net}.2`, at: (n) => `${net}.${n}`, cleanup };
}

/** A node TCP echo server (one line back per line) on host:port; prints `ready` once listening. */
export const ECHO_SERVER = `
const [host, port] = process.argv.slice(1);
require('net').createServer((s) => { s.on('error', () => {}); s.pipe(s); })
  .listen(Number(port), host, () => console.log('ready'));
process.on('SIGTERM', () => process.exit(0));
`;

/** Starts the echo server in `ns` and resolves once it listens. */
export async function startEchoServer(ns: string, host: string, port: number): Promise<ChildProcess> {
  const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', process.execPath, '-e', ECHO_SERVER, host, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('the echo server did not listen within 5 s')), 5000);
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('ready')) { clearTimeout(t); resolve(); } });
    child.once('exit', (code) => { clearTimeout(t); reject(new Error(`the echo server exited (${code}): ${err}`)); });
  });
  return child;
}

/** What a client saw: `echoed` (connected and got its line back), `timeout`, `refused`, or another error. */
export type ConnectOutcome = string;

const CLIENT = `
const [host, port, ms] = process.argv.slice(1);
const s = require('net').connect({ host, port: Number(port) });
const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, Number(ms));
s.on('connect', () => s.write('ping\\n'));
s.on('data', (d) => { if (d.toString() === 'ping\\n') { clearTimeout(t); console.log('echoed'); process.exit(0); } });
s.on('error', (e) => { clearTimeout(t); console.log(e.code === 'ECONNREFUSED' ? 'refused' : e.code); process.exit(0); });
`;

/** One connection from `ns` to host:port, given `ms` to connect and echo. */
export async function connectOnce(ns: string, host: string, port: number, ms: number): Promise<ConnectOutcome> {
  return (await inNetns(ns, process.execPath, ['-e', CLIENT, host, String(port), String(ms)], ms + 10_000)).trim();
}
