// Events per second over a sliding window, kept as per-slice counters (constant memory whatever
// the rate): fps in / fps processed per camera.

export class RateMeter {
  private readonly counts: Float64Array;
  private readonly stamps: Float64Array;
  total = 0;
  private first = Infinity;

  constructor(
    readonly windowMs = 5000,
    private readonly slices = 20,
    private readonly now: () => number = Date.now,
  ) {
    this.counts = new Float64Array(slices);
    this.stamps = new Float64Array(slices).fill(-Infinity);
  }

  private slot(t: number): number {
    const width = this.windowMs / this.slices;
    const idx = Math.floor(t / width);
    const i = idx % this.slices;
    if (this.stamps[i] !== idx) {
      this.stamps[i] = idx;
      this.counts[i] = 0;
    }
    return i;
  }

  mark(n = 1): void {
    this.total += n;
    if (this.first === Infinity) this.first = this.now();
    this.counts[this.slot(this.now())] += n;
  }

  /** Events per second over the last window. */
  rate(): number {
    const t = this.now();
    const width = this.windowMs / this.slices;
    const cur = Math.floor(t / width);
    let sum = 0;
    for (let i = 0; i < this.slices; i++) if (cur - this.stamps[i]! < this.slices) sum += this.counts[i]!;
    // A meter younger than its window divides by its age, so the first seconds are not under-reported.
    const span = Math.min(this.windowMs, Math.max(width, t - this.first + width));
    return sum / (span / 1000);
  }
}
