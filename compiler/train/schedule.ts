/**
 * Learning-rate schedules as pure functions of progress. Linear warmup from 0, then cosine to
 * 0 (VPT's WarmupCosineSchedule when stepped per epoch: epoch 0 runs at lr 0, as in the
 * official code; per-step for the AdamW recipes). With `constantWarmupLr`, Dassl's
 * ConstantWarmupScheduler around CosineAnnealingLR(T_max = total) as CoOp and DAPT use it:
 * the warmup runs at that lr, then t = warmup restarts the cosine at the base lr
 * (docs/spec/dapt.md: E 5, lr 2 → 1e-5, 2, 1.809017, 1.309017, 0.690983).
 */
export interface Schedule {
  baseLr: number;
  /** Warmup and total length, in the unit the schedule steps in (epochs or steps). */
  warmup: number;
  total: number;
  /** Fixed lr during the warmup; the cosine then spans `total` (not total − warmup). */
  constantWarmupLr?: number;
}

export function lrAt(s: Schedule, t: number): number {
  if (s.constantWarmupLr !== undefined) {
    if (t < s.warmup) return s.constantWarmupLr;
    const p = Math.min(1, (t - s.warmup) / Math.max(1, s.total));
    return s.baseLr * 0.5 * (1 + Math.cos(Math.PI * p));
  }
  if (t < s.warmup) return (s.baseLr * t) / s.warmup;
  const span = Math.max(1, s.total - s.warmup);
  const p = Math.min(1, (t - s.warmup) / span);
  return s.baseLr * 0.5 * (1 + Math.cos(Math.PI * p));
}

/** VPT: "lr · batch / 256". */
export function scaledLr(lr: number, batch: number, scale: boolean): number {
  return scale ? (lr * batch) / 256 : lr;
}
