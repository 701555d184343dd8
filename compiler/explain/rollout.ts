/**
 * Attention rollout (Abnar & Zuidema 2020): per block, average the heads, add the identity for
 * the residual path, row-normalise, and multiply the blocks together; the CLS row of the product
 * says how much of the final CLS token flows from each input token.
 *
 * Prompted models add tokens the image did not produce, so the product runs over *sources*
 * [CLS, patch 0 … patch G²−1, prompt] instead of over tokens:
 * - token layout [CLS | extra tokens | G² patches] (patches last, as VPT inserts its prompts
 *   after CLS); extra tokens are prompt sources;
 * - extra tokens are the prompt source as they enter every block (only CLS and patch rows are
 *   carried from block to block): exact for deep VPT, DA-VPT and SPT, which replace their
 *   prompts before each block (DA-VPT with a different count at its proxy blocks); for shallow
 *   VPT it counts what flows through the prompt tokens after block 0 as prompt (the map keeps
 *   only the direct patch paths);
 * - key layout [N prefix keys | tokens] (fused deep VPT's constant prefix K/V): a prefix column
 *   has no row of its own and flows to the prompt source, so a fused model rolls out exactly as
 *   its token form;
 * - pixel prompts (VP) add no tokens: their effect is inside the patch tokens they overlap.
 * Each row of every factor sums to 1, so every row of the result does too, and
 * cls + Σ patches + prompt = 1.
 */
import { CompilerError } from '../ops/errors.ts';

/** One block's head-averaged attention for one image. */
export interface AttentionLayer {
  /** Tokens in the block's input (T). */
  tokens: number;
  /** Query rows: T, or 1 when the block computes only the CLS row. */
  rows: number;
  /** Keys: N prefix keys + T. */
  keys: number;
  /** [rows, keys] row-major, each row a probability distribution. */
  probs: ArrayLike<number>;
}

export interface Rollout {
  /** G² patch sources: the share of the final CLS token that flows from each patch. */
  patches: Float64Array;
  /** Share that stays with the CLS token's own embedding. */
  cls: number;
  /** Share from prompt tokens and prefix keys. */
  prompt: number;
  /** The product's CLS and patch rows [1 + G², G² + 2] (columns CLS, patches, prompt), when the last block computes every row. */
  matrix: Float64Array | null;
}

/** Source columns: 0 CLS, 1..G² patches, G²+1 prompt. */
export function rollout(layers: readonly AttentionLayer[], numPatches: number): Rollout {
  if (layers.length === 0) throw new CompilerError('INTERNAL', 'rollout: no attention layers recorded');
  const S = numPatches + 2;
  const PROMPT = S - 1;
  const image = 1 + numPatches; // CLS and patch rows: the only ones carried from block to block
  // R [image, S]: what the CLS and patch tokens entering the next block are made of.
  let R = new Float64Array(image * S);
  for (let t = 0; t < image; t++) R[t * S + t] = 1;
  let clsRow: Float64Array | null = null;
  layers.forEach((a, i) => {
    const extra = a.tokens - image;
    const prefix = a.keys - a.tokens;
    if (extra < 0 || prefix < 0 || a.probs.length !== a.rows * a.keys || (a.rows !== a.tokens && a.rows !== 1)) {
      throw new CompilerError('BAD_SHAPE', `rollout: block ${i} attends with ${a.rows} queries over ${a.keys} keys and ${a.tokens} tokens; expected [CLS | prompts | ${numPatches} patches] tokens and T or 1 queries`);
    }
    if (clsRow) throw new CompilerError('UNSUPPORTED', `rollout: block ${i - 1} computed only the CLS row but is not the last block`);
    // Token j's sources: CLS and patches from R, every extra token the prompt (see the header).
    const source = (j: number): number => (j === 0 ? 0 : j <= extra ? -1 : j - extra);
    const queries = a.rows === 1 ? 1 : image;
    const next = new Float64Array(queries * S);
    for (let q = 0; q < queries; q++) {
      const r = q === 0 ? 0 : q + extra; // the query's token index
      const row = next.subarray(q * S, (q + 1) * S);
      const probs = a.probs as ArrayLike<number>;
      const base = r * a.keys;
      let total = 1; // the identity's 1 on (r, r)
      for (let k = 0; k < a.keys; k++) total += probs[base + k]!;
      for (let k = 0; k < prefix; k++) row[PROMPT]! += probs[base + k]!;
      for (let j = 0; j < a.tokens; j++) {
        const p = probs[base + prefix + j]! + (j === r ? 1 : 0);
        const src = source(j);
        if (p === 0) continue;
        if (src < 0) row[PROMPT]! += p;
        else for (let s = 0; s < S; s++) row[s]! += p * R[src * S + s]!;
      }
      for (let s = 0; s < S; s++) row[s]! /= total;
    }
    if (a.rows === 1) clsRow = next;
    else R = next;
  });
  const cls = clsRow ?? R.subarray(0, S);
  return { patches: Float64Array.from(cls.subarray(1, 1 + numPatches)), cls: cls[0]!, prompt: cls[PROMPT]!, matrix: clsRow ? null : R };
}
