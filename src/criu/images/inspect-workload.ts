/**
 * Support for inspect.test.ts: the Python workload it dumps (what it holds is what the test
 * checks), and small process helpers. Not a test itself.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export const MAP_BYTES = 4 << 20;
export const CHILD_CODE = 'import time; time.sleep(100000)';
// The comment makes argv longer than a page, so the arguments always span pages.
export const WORKLOAD = `
import ctypes, json, mmap, os, socket, subprocess, sys, threading
if os.getsid(0) != os.getpid():
    sys.exit('not a session leader')
f = open('data.txt', 'w+')
f.write('ferry')
f.flush()
ls = socket.socket()
ls.bind(('127.0.0.1', 0))
ls.listen(8)
c = socket.create_connection(ls.getsockname())
s, _ = ls.accept()
ua, ub = socket.socketpair()
r, w = os.pipe()
m = mmap.mmap(-1, ${MAP_BYTES}, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(0, ${MAP_BYTES}, 4096):
    m[i:i + 4096] = b'F' * 4096
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
stop = threading.Event()
threading.Thread(target=stop.wait, daemon=True).start()
child = subprocess.Popen([sys.executable, '-c', ${JSON.stringify(CHILD_CODE)}, 'child-arg'],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
ready = {'pid': os.getpid(), 'child': child.pid, 'addr': addr, 'exe': sys.executable,
         'tids': sorted(int(t) for t in os.listdir('/proc/self/task')),
         'port': ls.getsockname()[1], 'cport': c.getsockname()[1],
         'fds': {'file': f.fileno(), 'listen': ls.fileno(), 'client': c.fileno(), 'server': s.fileno(),
                 'unix': [ua.fileno(), ub.fileno()], 'pipe': [r, w]}}
with open('ready.tmp', 'w') as out:
    json.dump(ready, out)
os.rename('ready.tmp', 'ready.json')
stop.wait()
# ${'padding '.repeat(600)}
`;
export const ARGS = ['alpha', 'beta', 'gamma'];

export interface Ready {
  pid: number; child: number; addr: number; exe: string; tids: number[]; port: number; cport: number;
  fds: { file: number; listen: number; client: number; server: number; unix: [number, number]; pipe: [number, number] };
}

export function run(file: string, args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms: number, isDead: () => boolean): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (isDead()) throw new Error(`${what}: the workload exited early`);
    if (Date.now() > deadline) throw new Error(`${what}: timed out after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const cmdline = async (pid: number): Promise<string[]> =>
  (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').slice(0, -1);
