// The drift reference of a compiled task (runtime/artifact/reference.ts): the shipped precision's
// predictions on the validation set, as per-class top-1 score histograms, written into the
// manifest so the device's drift alarm has something to compare with.

import { driftReference, type DriftReference } from '../../runtime/artifact/reference.ts';

/** From logits [N, C] (row-major) of the shipped model on the validation images. */
export function referenceFromLogits(logits: Float32Array, C: number): DriftReference {
  const probs = new Float32Array(logits.length);
  for (let n = 0; n < logits.length / C; n++) {
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, logits[n * C + c]!);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += probs[n * C + c] = Math.exp(logits[n * C + c]! - max);
    for (let c = 0; c < C; c++) probs[n * C + c]! /= sum;
  }
  return driftReference(probs, C);
}
