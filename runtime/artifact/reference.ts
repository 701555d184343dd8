// The drift reference a manifest carries (docs/data-loop.md "Drift"): what the model's predictions
// looked like on its validation set at compile time, so a device can tell when its camera's
// recent predictions no longer look like that. Per label (manifest order): how many validation
// images were predicted as it, and the histogram of their top-1 scores over fixed bin edges.
// Keeping the histograms per predicted class lets the device compare score distributions at the
// line's own class mix (a line sees far fewer defects than a balanced validation set), and the
// class counts give the predicted-class mix on their own. Written by the compiler
// (compiler/export/compile.ts) from the shipped precision's validation outputs.

import { z } from 'zod';

/** Top-1 scores crowd near 1 on a good model: finer bins there. */
export const DEFAULT_SCORE_EDGES = [0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 1] as const;

const Count = z.number().int().nonnegative();

export const DriftReference = z
  .object({
    /** Validation images the figures come from. */
    samples: z.number().int().positive(),
    /** Bin edges of the score histograms: ascending, from 0 to 1; a score s falls in bin i when edges[i] ≤ s < edges[i+1] (1 in the last). */
    edges: z.array(z.number().min(0).max(1)).min(3).max(101),
    /** One entry per label, in label order. */
    classes: z.array(z.object({ count: Count, scores: z.array(Count) })),
  })
  .superRefine((r, ctx) => {
    if (r.edges[0] !== 0 || r.edges.at(-1) !== 1) ctx.addIssue({ code: 'custom', path: ['edges'], message: 'must start at 0 and end at 1' });
    for (let i = 1; i < r.edges.length; i++) if (!(r.edges[i]! > r.edges[i - 1]!)) ctx.addIssue({ code: 'custom', path: ['edges', i], message: 'edges must be strictly ascending' });
    let total = 0;
    r.classes.forEach((c, i) => {
      total += c.count;
      if (c.scores.length !== r.edges.length - 1) ctx.addIssue({ code: 'custom', path: ['classes', i, 'scores'], message: `has ${c.scores.length} bins; edges make ${r.edges.length - 1}` });
      else if (c.scores.reduce((a, b) => a + b, 0) !== c.count) ctx.addIssue({ code: 'custom', path: ['classes', i, 'scores'], message: `bins sum to ${c.scores.reduce((a, b) => a + b, 0)}, count is ${c.count}` });
    });
    if (total !== r.samples) ctx.addIssue({ code: 'custom', path: ['samples'], message: `is ${r.samples}, the class counts sum to ${total}` });
  });
export type DriftReference = z.infer<typeof DriftReference>;

/** The bin of a score. */
export function scoreBin(edges: readonly number[], s: number): number {
  let lo = 0;
  let hi = edges.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (s >= edges[mid]!) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The reference from class probabilities `probs` [N, C] (softmax outputs, row-major). */
export function driftReference(probs: Float32Array, C: number, edges: readonly number[] = DEFAULT_SCORE_EDGES): DriftReference {
  const N = probs.length / C;
  if (!Number.isInteger(N) || N < 1) throw new RangeError(`driftReference: ${probs.length} probabilities are not N × ${C}`);
  const classes = Array.from({ length: C }, () => ({ count: 0, scores: new Array<number>(edges.length - 1).fill(0) }));
  for (let n = 0; n < N; n++) {
    let best = 0;
    for (let c = 1; c < C; c++) if (probs[n * C + c]! > probs[n * C + best]!) best = c;
    const k = classes[best]!;
    k.count++;
    k.scores[scoreBin(edges, probs[n * C + best]!)]!++;
  }
  return { samples: N, edges: [...edges], classes };
}
