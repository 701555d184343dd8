/**
 * Every backward rule on a small random graph built through `Ops`: float64 finite differences
 * vs the float64-evaluated training graph (≤ 1e-6 relative), onnxruntime's float32 run of that
 * graph (≤ 1e-4) and tf.grads through TfOps (≤ 1e-4). See test/helpers/grad-check.ts.
 */
import test from 'ava';
import { initTf } from '../compiler/ops/tf-backend.ts';
import type { Ops } from '../compiler/ops/ops.ts';
import { block, type BlockWeights } from '../compiler/backbones/vit.ts';
import type { VitConfig } from '../compiler/backbones/vit-variants.ts';
import { softmaxCrossEntropy, smoothedTargets } from '../compiler/train/loss.ts';
import { checkCase, type GradCase } from './helpers/grad-check.ts';

const B = 2;

const blockCase = (clsOnly: boolean): GradCase => {
  const D = 8;
  const cfg = { embedDim: D, numHeads: 2, eps: 1e-6 } as VitConfig;
  const aff = (out: number, inp: number) => [
    { kind: 'w' as const, shape: [out, inp], std: 1 / Math.sqrt(inp) },
    { kind: 'w' as const, shape: [out], std: 0.1 },
  ];
  const norm = [{ kind: 'w' as const, shape: [D], mean: 1, std: 0.1 }, { kind: 'w' as const, shape: [D], std: 0.1 }];
  return {
    name: `ViT block (LN, qkv split, q·kᵀ, softmax, GELU MLP, residuals${clsOnly ? ', CLS-only last block' : ''})`,
    inputs: [{ kind: 'x', shape: [B, 5, D] }, ...norm, ...aff(3 * D, D), ...aff(D, D), ...norm, ...aff(2 * D, D), ...aff(D, 2 * D)],
    build: <T>(o: Ops<T>, [x, ...w]: T[]) => {
      const a = (i: number) => ({ w: w[i]!, b: w[i + 1]! });
      const bw: BlockWeights<T> = { norm1: a(0), qkv: a(2), proj: a(4), norm2: a(6), fc1: a(8), fc2: a(10) };
      return block(o, cfg, bw, x!, undefined, clsOnly);
    },
  };
};

const cases: GradCase[] = [
  { name: 'MatMul batched, right operand broadcast, both trained', inputs: [{ kind: 'x', shape: [B, 2, 3, 4] }, { kind: 'p', shape: [2, 4, 3] }], build: (o, [a, b]) => o.matMul(a!, b!) },
  { name: 'MatMul 4-D q·kᵀ of one input (two paths into one value)', inputs: [{ kind: 'x', shape: [B, 2, 3, 4] }], build: (o, [x]) => o.matMul(x!, o.transpose(x!, [0, 1, 3, 2])) },
  { name: 'MatMul 3-D × trained 2-D (weight gradient as one row Gemm)', inputs: [{ kind: 'x', shape: [B, 3, 4] }, { kind: 'p', shape: [4, 5] }], build: (o, [x, w]) => o.matMul(x!, w!) },
  { name: 'linear 3-D: frozen weight, trained bias (no weight gradient)', inputs: [{ kind: 'x', shape: [B, 3, 6] }, { kind: 'w', shape: [5, 6] }, { kind: 'p', shape: [5] }], build: (o, [x, w, b]) => o.linear(x!, w!, b!) },
  { name: 'linear 3-D: trained weight (Transpose → MatMul)', inputs: [{ kind: 'c', shape: [B, 3, 6] }, { kind: 'p', shape: [5, 6] }, { kind: 'p', shape: [5] }], build: (o, [x, w, b]) => o.linear(x!, w!, b!) },
  { name: 'Gemm transB (2-D linear): input, weight and bias trained', inputs: [{ kind: 'x', shape: [B, 6] }, { kind: 'p', shape: [5, 6] }, { kind: 'p', shape: [5] }], build: (o, [x, w, b]) => o.linear(x!, w!, b!) },
  {
    name: 'Add/Sub/Mul/Div with broadcasting reductions',
    inputs: [{ kind: 'x', shape: [B, 4, 5] }, { kind: 'p', shape: [5], mean: 2, std: 0.3 }, { kind: 'p', shape: [4, 1], mean: 1.5, std: 0.2 }],
    build: (o, [x, a, b]) => o.div(o.mul(o.sub(o.add(x!, a!), b!), a!), o.add(b!, a!)),
  },
  { name: 'scale and a frozen constant operand', inputs: [{ kind: 'x', shape: [B, 6] }, { kind: 'w', shape: [6] }], build: (o, [x, w]) => o.mul(o.sub(o.scale(x!, -0.37), w!), x!) },
  { name: 'LayerNormalization: input, γ and β trained', inputs: [{ kind: 'x', shape: [B, 3, 8] }, { kind: 'p', shape: [8], mean: 1, std: 0.2 }, { kind: 'p', shape: [8], std: 0.2 }], build: (o, [x, g, b]) => o.layerNorm(x!, g!, b!, 1e-6) },
  { name: 'LayerNormalization: frozen affine', inputs: [{ kind: 'x', shape: [B, 3, 8], std: 2, mean: 0.5 }, { kind: 'w', shape: [8], mean: 1, std: 0.2 }, { kind: 'w', shape: [8], std: 0.2 }], build: (o, [x, g, b]) => o.layerNorm(x!, g!, b!, 1e-5) },
  { name: 'Softmax', inputs: [{ kind: 'x', shape: [B, 3, 7], std: 2 }], build: (o, [x]) => o.softmax(x!) },
  { name: 'LogSoftmax', inputs: [{ kind: 'x', shape: [B, 3, 7], std: 2 }], build: (o, [x]) => o.logSoftmax(x!) },
  { name: 'Exp and Log', inputs: [{ kind: 'x', shape: [B, 6] }, { kind: 'p', shape: [6], mean: 2, std: 0.2 }], build: (o, [x, p]) => o.log(o.add(o.exp(x!), p!)) },
  { name: 'Sqrt (L2 normalisation, as CLIP normalises features)', inputs: [{ kind: 'x', shape: [B, 6] }, { kind: 'p', shape: [6], mean: 0.5, std: 0.3 }], build: (o, [x, p]) => { const f = o.add(x!, p!); return o.div(f, o.sqrt(o.reduceSum(o.mul(f, f), [-1], true))); } },
  { name: 'GELU as recorded (Div √2 → Erf → Add → Mul → Mul)', inputs: [{ kind: 'x', shape: [B, 16], std: 1.5 }], build: (o, [x]) => o.gelu(x!) },
  { name: 'QuickGELU and Sigmoid', inputs: [{ kind: 'x', shape: [B, 16], std: 1.5 }], build: (o, [x]) => o.add(o.quickGelu(x!), o.sigmoid(x!)) },
  {
    name: 'Concat, Slice, Split (an unused split output gets zeros)',
    inputs: [{ kind: 'x', shape: [B, 4, 5] }],
    build: (o, [x]) => {
      const [a, , c] = o.split(x!, -1, [1, 2, 2]);
      const y1 = o.concat([c!, a!], -1); // [B, 4, 3]
      return o.concat([o.reshape(y1, [0, -1]), o.reshape(o.slice(x!, 1, 1, 3), [0, -1]), o.reshape(o.slice(x!, 2, 3, 5), [0, -1])], 1);
    },
  },
  { name: 'Reshape and Transpose (patchify)', inputs: [{ kind: 'x', shape: [B, 3, 4, 4] }], build: (o, [x]) => o.mul(o.reshape(o.transpose(o.reshape(x!, [0, 3, 2, 2, 2, 2]), [0, 2, 4, 1, 3, 5]), [0, 4, 12]), o.reshape(o.transpose(o.reshape(x!, [0, 3, 2, 2, 2, 2]), [0, 2, 4, 1, 3, 5]), [0, 4, 12])) },
  {
    name: 'Expand (expandBatch) of a trained prompt into the tokens',
    inputs: [{ kind: 'x', shape: [B, 3, 5] }, { kind: 'p', shape: [1, 2, 5] }],
    build: (o, [x, p]) => o.softmax(o.concat([o.slice(x!, 1, 0, 1), o.expandBatch(p!, x!), o.slice(x!, 1, 1, 3)], 1)),
  },
  {
    name: 'ReduceMean / ReduceSum, keepDims both ways, over the batch too',
    inputs: [{ kind: 'x', shape: [B, 4, 5] }],
    build: (o, [x]) => o.reduceMean(o.mul(o.add(x!, o.reduceMean(x!, [0], true)), o.reduceSum(x!, [-1], true)), [1], false),
  },
  {
    name: 'softmax cross-entropy with label smoothing (the shared loss) through a trained head',
    inputs: [{ kind: 'x', shape: [B, 6] }, { kind: 'p', shape: [4, 6] }, { kind: 'p', shape: [4] }, { kind: 'c', shape: [B, 4], data: smoothedTargets(Int32Array.of(2, 0), 4, 0.1) }],
    build: (o, [x, w, b, t]) => softmaxCrossEntropy(o, o.linear(x!, w!, b!), t!),
    scalar: true,
  },
  blockCase(false),
  blockCase(true),
];

test.before(async () => {
  await initTf();
});

for (const c of cases) {
  test(`backward rule: ${c.name}`, async (t) => {
    const r = await checkCase(c);
    t.log(`finite differences ${r.fd.toExponential(1)}, onnxruntime ${r.ort.toExponential(1)}, tf.grads ${r.tf.toExponential(1)} (${r.graph.forwardNodes} forward + ${r.graph.backwardNodes} backward nodes)`);
    t.true(r.fd <= 1e-6, `float64 rules vs finite differences: ${r.fd}`);
    t.true(r.ort <= 1e-4, `onnxruntime vs float64: ${r.ort}`);
    t.true(r.tf <= 1e-4, `tf.grads vs onnxruntime: ${r.tf}`);
  });
}
