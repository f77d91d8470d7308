import type { Socket } from 'node:net';
import { FerryError } from '../../util/errors.js';
import { PageHandler, type PostcopyProgress } from './handler.js';

/**
 * The destination's post-copy state, per migration: the page stream the source opened (held
 * until the restore starts the handler), the handler, and its outcome once it ended (kept for
 * the source's GET after the window).
 */
export class PostcopyDestination {
  private readonly streams = new Map<string, Socket>();
  private readonly handlers = new Map<string, PageHandler>();
  private readonly outcomes = new Map<string, PostcopyProgress>();

  /** The source's page stream for migration `id` (one per migration). */
  accept(id: string, socket: Socket): void {
    if (this.streams.has(id) || this.handlers.has(id)) throw new FerryError('ERR_MIGRATION_STATE', `migration ${id} already has its page stream`);
    this.streams.set(id, socket);
    socket.once('close', () => { if (this.streams.get(id) === socket) this.streams.delete(id); });
  }

  /** At the restore, before CRIU runs: the handler takes the stream and listens in the work dir. */
  async beforeRestore(id: string, workDir: string, imagesDir: string, onEnd: (p: PostcopyProgress) => void): Promise<void> {
    const source = this.streams.get(id);
    if (!source) throw new FerryError('ERR_MIGRATION_STATE', `migration ${id} is post-copy but its source opened no page stream`, { hint: 'the source opens it (GET /v1/migrations/:id/pages, upgraded) before it asks for the restore' });
    this.streams.delete(id);
    const h = await PageHandler.start({ workDir, imagesDir, source });
    this.handlers.set(id, h);
    void h.ended.then((p) => {
      this.outcomes.set(id, p);
      this.handlers.delete(id);
      onEnd(p);
    });
  }

  /** The commit: the copy runs (its pid is killed should the source be lost); pages flow. */
  go(id: string, pid: number | undefined): void {
    this.handlers.get(id)?.go(pid);
  }

  progress(id: string): PostcopyProgress | undefined {
    return this.handlers.get(id)?.progress() ?? this.outcomes.get(id);
  }

  /** Stops what migration `id` has here (abort): the handler (which kills the copy it knows), the stream. */
  async stop(id: string): Promise<void> {
    this.streams.get(id)?.destroy();
    this.streams.delete(id);
    await this.handlers.get(id)?.stop();
  }

  async close(): Promise<void> {
    await Promise.all([...this.handlers.keys(), ...this.streams.keys()].map((id) => this.stop(id)));
  }
}
