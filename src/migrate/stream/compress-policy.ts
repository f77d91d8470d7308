/**
 * Whether zstd pays on this transfer: it does when the link, not the CPU, is what limits it and
 * the data shrinks enough. Measured, not assumed: the data's ratio and the compressors' speed on
 * the first MiBs of the pages (compressed on the worker pool, sent as they came out), and the
 * link's rate as the socket takes the stream once the dump is complete (`linkOpen`): from then
 * on the images are read from memory, far faster than a link, so the socket's pace is the link's
 * (while CRIU still writes, the dump may be what sets the pace; a link faster than reading memory
 * then measures as "fast", and compression is rightly not used).
 *
 *   raw time per MiB         = 1 / link
 *   compressed time per MiB  = max(1 / (workers × speed), ratio / link)
 *
 * It is used when it saves at least MIN_SAVING of the wire time. With too little data to
 * measure the link it is not (a few MiB cost milliseconds either way).
 */

/** What was measured, and what was decided. */
export interface CompressionReport {
  /** 'auto' (measured), 'forced' (asked for), 'off' (refused by the caller). */
  mode: 'auto' | 'forced' | 'off';
  used: boolean;
  reason: string;
  /** Compressed / raw bytes of the sample (1 = incompressible). */
  ratio?: number;
  /** MB/s of raw data one compressor took, on the sample. */
  compressMBps?: number;
  workers?: number;
  /** MB/s the socket took the stream at. */
  linkMBps?: number;
  sampleBytes?: number;
}

export const MIN_SAVING = 0.1;

export interface Measured { ratio: number; compressMBps: number; workers: number; linkMBps: number }

/** The rule above, on measured figures: used or not, and why (in words a report can carry). */
export function decide(m: Measured): { used: boolean; reason: string; saving: number } {
  const raw = 1 / m.linkMBps;
  const cpu = 1 / (m.workers * m.compressMBps);
  const wire = m.ratio / m.linkMBps;
  const packed = Math.max(cpu, wire);
  const saving = 1 - packed / raw;
  const figures = `ratio ${m.ratio.toFixed(2)}, ${m.workers} × ${Math.round(m.compressMBps)} MB/s compressing, link ${Math.round(m.linkMBps)} MB/s`;
  if (saving >= MIN_SAVING) {
    return { used: true, saving, reason: `compression saves ${Math.round(saving * 100)} % of the wire time (${figures})` };
  }
  const why = m.ratio > 1 - MIN_SAVING ? 'the data hardly compresses' : cpu > wire ? 'compressing is slower than the link' : 'it saves too little';
  return { used: false, saving, reason: `${why}: ${Math.round(saving * 100)} % saved at best (${figures})` };
}

/**
 * Follows a transfer and decides once: feed it the sample's results and the socket's progress;
 * `compressing()` says what to do with the next chunk.
 */
export class CompressionPolicy {
  private sampleRaw = 0;
  private samplePacked = 0;
  private sampleMs = 0;
  private wire = 0;
  private linkFromWire: number | undefined;
  private linkStart: { wire: number; at: number } | undefined;
  private decided: CompressionReport | undefined;

  constructor(
    private readonly mode: 'auto' | 'forced' | 'off',
    readonly workers: number,
    readonly o = { sampleBytes: 4 << 20, linkFrom: 4 << 20, linkBytes: 16 << 20 },
  ) {
    if (mode === 'forced') this.decided = { mode, used: true, reason: 'compression was asked for', workers };
    if (mode === 'off') this.decided = { mode, used: false, reason: 'compression was turned off', workers };
  }

  /** Is the next chunk compressed? While sampling it is (that is the sample). */
  compressing(): boolean {
    if (this.decided) return this.decided.used;
    return this.sampleRaw < this.o.sampleBytes;
  }

  /** A chunk went through a compressor: raw bytes in, bytes out (raw when it did not shrink), its time. */
  sampled(raw: number, packed: number, ms: number): void {
    if (this.decided || this.sampleRaw >= this.o.sampleBytes) return;
    this.sampleRaw += raw;
    this.samplePacked += packed;
    this.sampleMs += ms;
  }

  /** From now on the socket's pace is the link's (the dump is complete). */
  linkOpen(): void {
    this.linkFromWire ??= this.wire + this.o.linkFrom;
  }

  /** A frame of `bytes` went to the socket at `at` (ms). */
  sent(bytes: number, at = performance.now()): void {
    this.wire += bytes;
    if (this.decided || this.linkFromWire === undefined || this.wire < this.linkFromWire) return;
    // The frames already buffered when the link opened are behind us: time the next ones.
    if (!this.linkStart) { this.linkStart = { wire: this.wire, at }; return; }
    const measured = this.wire - this.linkStart.wire;
    if (measured < this.o.linkBytes || this.sampleRaw < this.o.sampleBytes) return;
    this.decideNow(measured / 1e6 / Math.max(1e-3, (at - this.linkStart.at) / 1000));
  }

  private sampleFigures(): { ratio?: number; compressMBps?: number; sampleBytes?: number } {
    if (this.sampleRaw === 0) return {};
    return { ratio: round(this.samplePacked / this.sampleRaw), compressMBps: Math.round(this.sampleRaw / 1e6 / Math.max(1e-3, this.sampleMs / 1000)), sampleBytes: this.sampleRaw };
  }

  private decideNow(linkMBps: number): void {
    const ratio = this.samplePacked / this.sampleRaw;
    const compressMBps = this.sampleRaw / 1e6 / Math.max(1e-3, this.sampleMs / 1000);
    const d = decide({ ratio, compressMBps, workers: this.workers, linkMBps });
    this.decided = { mode: this.mode, used: d.used, reason: d.reason, ratio: round(ratio), compressMBps: Math.round(compressMBps), workers: this.workers, linkMBps: Math.round(linkMBps), sampleBytes: this.sampleRaw };
  }

  /** What was decided (or why nothing was: too little data). */
  report(): CompressionReport {
    if (this.decided) return this.decided;
    return { mode: this.mode, used: false, reason: `too little data to measure the link (${Math.round(this.wire / 2 ** 20)} MiB sent, too little of it after the dump): only the sample was compressed`, workers: this.workers, ...this.sampleFigures() };
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
