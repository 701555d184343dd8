/**
 * The published backbone's output centring and scaling (compiler/pretrain/standardize.ts): folded
 * into the final norm, it makes each output feature mean 0 and the average feature variance 1 over
 * the images it was measured on, keeps the features' relative scales, and every head that read the
 * old output computes the same logits from the new one.
 */
import test from 'ava';
import fc from 'fast-check';
import type { StateDict } from '../compiler/backbones/safetensors.ts';
import { featureStats, foldStandardisation, outputScale } from '../compiler/pretrain/standardize.ts';
import { mulberry32, normal } from '../devices/rng.ts';

/** The final norm's affine applied to normalised rows n [N, D]: γ ⊙ n + β. */
function normOut(sd: StateDict, n: Float32Array, D: number): Float32Array {
  const g = sd.get('norm.weight')!.data;
  const b = sd.get('norm.bias')!.data;
  return Float32Array.from(n, (v, i) => g[i % D]! * v + b[i % D]!);
}

function linear(sd: StateDict, prefix: string, x: Float32Array, D: number): Float64Array {
  const w = sd.get(`${prefix}.weight`)!;
  const b = sd.get(`${prefix}.bias`)!.data;
  const C = w.shape[0]!;
  const N = x.length / D;
  const out = new Float64Array(N * C);
  for (let i = 0; i < N; i++) for (let c = 0; c < C; c++) {
    let z = b[c]!;
    for (let d = 0; d < D; d++) z += w.data[c * D + d]! * x[i * D + d]!;
    out[i * C + c] = z;
  }
  return out;
}

test('folded centring and scaling: features mean 0, average variance 1, relative scales kept, every head computes what it did', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 2, max: 6 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (D, C, seed) => {
      const rng = mulberry32(seed);
      const rand = (k: number, scale = 1, shift = 0) => Float32Array.from({ length: k }, () => shift + scale * normal(rng));
      // A large common component (β far from 0) and small per-image spread: what the pretrained backbone had.
      const sd: StateDict = new Map([
        ['norm.weight', { shape: [D], data: rand(D, 0.3, 1) }],
        ['norm.bias', { shape: [D], data: rand(D, 5) }],
        ['head.weight', { shape: [C, D], data: rand(C * D) }],
        ['head.bias', { shape: [C], data: rand(C) }],
        ['heads.parts.patches.weight', { shape: [C, D], data: rand(C * D) }],
        ['heads.parts.patches.bias', { shape: [C], data: rand(C) }],
        ['blocks.0.mlp.fc1.weight', { shape: [D, D], data: rand(D * D) }],
      ]);
      const N = 40;
      const n = rand(N * D, 0.2);
      const stats = featureStats(normOut(sd, n, D), D);
      const folded = foldStandardisation(sd, stats);

      const after = featureStats(normOut(folded, n, D), D);
      if (Math.abs(outputScale(after) - 1) > 1e-3) return false;
      const k = outputScale(stats);
      for (let d = 0; d < D; d++) {
        if (Math.abs(after.mean[d]!) > 1e-4 || Math.abs(after.std[d]! * k - stats.std[d]!) > 1e-3 * Math.max(1, stats.std[d]!)) return false;
      }
      for (const p of ['head', 'heads.parts.patches']) {
        const a = linear(sd, p, normOut(sd, n, D), D);
        const b = linear(folded, p, normOut(folded, n, D), D);
        if (a.some((v, i) => Math.abs(v - b[i]!) > 1e-3 * Math.max(1, Math.abs(v)))) return false;
      }
      // Tensors that do not read the output are the same objects; the input state dict is unchanged.
      return folded.get('blocks.0.mlp.fc1.weight') === sd.get('blocks.0.mlp.fc1.weight') && folded.get('norm.bias') !== sd.get('norm.bias');
    }),
    { numRuns: 50 },
  );
  t.pass(); // fc.assert throws with the counterexample when a property fails
});

test('features that never vary are centred, not divided by ~0', (t) => {
  const x = new Float32Array([1, 3, 1, 5, 1, 7]); // D = 2: column 0 constant
  const s = featureStats(x, 2);
  t.deepEqual([...s.mean], [1, 5]);
  t.is(s.std[0], 0);
  t.true(Math.abs(s.std[1]! - Math.sqrt(8 / 3)) < 1e-6);
  t.true(Math.abs(outputScale(s) - Math.sqrt(4 / 3)) < 1e-6);
  t.is(s.images, 3);
  t.is(outputScale(featureStats(new Float32Array([2, 2, 2, 2]), 2)), 1);
});
