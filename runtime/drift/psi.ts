// Population stability index (PSI) between a reference distribution and a recent one, in the two
// forms the drift monitor uses. PSI = Σ_i (a_i − e_i) · ln(a_i / e_i) over bins, with a the
// recent and e the expected proportions; every bin gets half a count on both sides (so an empty
// bin is finite). Conventional reading: < 0.1 stable, 0.1–0.25 a shift, > 0.25 a large shift.
// Pure functions; test/drift.test.ts checks them.

import type { DriftReference } from '../artifact/reference.ts';

const ALPHA = 0.5;

/** PSI between observed counts and expected proportions (Σ expected = 1). */
export function psi(observed: ArrayLike<number>, expected: ArrayLike<number>): number {
  const B = observed.length;
  let n = 0;
  for (let i = 0; i < B; i++) n += observed[i]!;
  let s = 0;
  for (let i = 0; i < B; i++) {
    const a = (observed[i]! + ALPHA) / (n + ALPHA * B);
    const e = (expected[i]! * n + ALPHA) / (n + ALPHA * B);
    s += (a - e) * Math.log(a / e);
  }
  return s;
}

/** PSI of the predicted-class mix: recent counts per class against the reference's shares. */
export function classPsi(ref: DriftReference, counts: ArrayLike<number>): number {
  const C = ref.classes.length;
  const expected = ref.classes.map((c) => (c.count + ALPHA) / (ref.samples + ALPHA * C));
  return psi(counts, expected);
}

/**
 * PSI of the top-1 score distribution at the recent class mix: the expected histogram is the
 * reference's per-class histograms weighted by how often each class was predicted recently (a
 * class the reference never predicted stands in with the reference's pooled histogram). So a line
 * that simply sees fewer defects than the validation set does not look drifted; scores that moved
 * within a class do.
 * `hist[c][b]`: recent results predicted as class c with their score in bin b.
 */
export function scorePsi(ref: DriftReference, hist: readonly ArrayLike<number>[]): number {
  const B = ref.edges.length - 1;
  const pooled = new Array<number>(B).fill(0);
  for (const c of ref.classes) for (let b = 0; b < B; b++) pooled[b]! += c.scores[b]! / ref.samples;
  const observed = new Array<number>(B).fill(0);
  const expected = new Array<number>(B).fill(0);
  let n = 0;
  hist.forEach((h, c) => {
    let nc = 0;
    for (let b = 0; b < B; b++) {
      observed[b]! += h[b]!;
      nc += h[b]!;
    }
    if (nc === 0) return;
    n += nc;
    const r = ref.classes[c];
    for (let b = 0; b < B; b++) {
      const share = r && r.count > 0 ? (r.scores[b]! + ALPHA / B) / (r.count + ALPHA) : pooled[b]!;
      expected[b]! += nc * share;
    }
  });
  if (n === 0) return 0;
  return psi(observed, expected.map((x) => x / n));
}
