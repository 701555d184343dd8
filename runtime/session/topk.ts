// Top-k over one row of probabilities: k passes of a partial selection, O(C·k), no sort of all C.

import type { LabelScore } from '../schema/payloads.ts';

export function topK(probs: Float32Array, labels: readonly string[], k: number): LabelScore[] {
  const n = Math.min(k, probs.length);
  const picked: number[] = [];
  for (let j = 0; j < n; j++) {
    let best = -1;
    for (let i = 0; i < probs.length; i++) {
      if (picked.includes(i)) continue;
      if (best < 0 || probs[i]! > probs[best]!) best = i;
    }
    picked.push(best);
  }
  // Clamp: fp16/int8 softmax can land a hair outside [0, 1], which the payload schema refuses.
  return picked.map((i) => ({ label: labels[i]!, score: Math.min(1, Math.max(0, probs[i]!)) }));
}
