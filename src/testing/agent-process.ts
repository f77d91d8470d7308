import type { ChildProcess } from 'node:child_process';

/**
 * Waits for a `ferry agent --json` child to say where it listens: its URL, or a rejection when
 * it exits first or takes over 20 s.
 */
export function agentListening(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the agent did not start within 20 s: ${out}`)), 20_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      try {
        resolve((JSON.parse(out) as { listening: string }).listening);
        clearTimeout(timer);
      } catch { /* not complete yet */ }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the agent exited (${code}) before listening: ${out}`)); });
  });
}
