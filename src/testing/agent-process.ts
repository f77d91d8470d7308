import type { ChildProcess } from 'node:child_process';

/**
 * Waits for a `ferry agent --json` child to say where it listens: its URL, or a rejection when
 * it exits first or takes over 20 s.
 */
export function agentListening(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the agent did not start within 20 s: ${out}`)), 20_000);
    // Other JSON may come first (e.g. what the start-up's crash recovery did): the line that
    // names `listening` is the one.
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      for (const doc of candidates(out)) {
        const listening = (doc as { listening?: unknown } | null)?.listening;
        if (typeof listening === 'string') {
          clearTimeout(timer);
          resolve(listening);
          return;
        }
      }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the agent exited (${code}) before listening: ${out}`)); });
  });
}

/** Every complete JSON document in `text`: one a line, or the whole text (pretty-printed). */
function candidates(text: string): unknown[] {
  const out: unknown[] = [];
  for (const piece of [text, ...text.split('\n')]) {
    try { out.push(JSON.parse(piece)); } catch { /* not (yet) a document */ }
  }
  return out;
}
