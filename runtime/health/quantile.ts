// Latency quantiles over the most recent samples: a fixed ring (no growth over days of uptime);
// quantile() sorts a copy, which for ~1k samples costs microseconds and runs once per health tick.

export class QuantileRing {
  private readonly buf: Float64Array;
  private n = 0;
  private at = 0;

  constructor(readonly capacity = 1024) {
    this.buf = new Float64Array(capacity);
  }

  push(v: number): void {
    this.buf[this.at] = v;
    this.at = (this.at + 1) % this.capacity;
    if (this.n < this.capacity) this.n++;
  }

  get count(): number {
    return this.n;
  }

  /** Nearest-rank quantile (q in 0..1) of the samples held; null when empty. */
  quantile(q: number): number | null {
    if (this.n === 0) return null;
    const s = this.buf.slice(0, this.n).sort();
    const rank = Math.min(this.n - 1, Math.max(0, Math.ceil(q * this.n) - 1));
    return s[rank]!;
  }
}
