/**
 * Frozen-feature evaluation of a pretrained backbone on the benchmark line (issue 15): the product's
 * `linear` and `vpt-deep` methods trained through the real trainer on 100 images per class of a
 * line no pretraining source drew (bracket × blue-anodised by default), scored on 100 more per
 * class: top-1 (best over epochs, as bench:transfer reports), AUROC of defective vs ok (score
 * 1 − p(ok) of the best epoch's tensors) and the escape rate (defective parts passed) at the
 * threshold that keeps false rejects (good parts failed) ≤ 10 %. Optionally Fashion-MNIST 5–9
 * (100 per class). Used by bench/pretrain.ts.
 */
import { join } from 'node:path';
import { compileConfig } from '../compiler/config/compile-config.ts';
import { prepareJob } from '../compiler/train/job.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { readSafetensors } from '../compiler/backbones/safetensors.ts';
import { auroc } from '../compiler/pretrain/probe.ts';
import { repo } from './lib.ts';

export interface EvalSpec {
  weights: string;
  arch: string;
  task: 'line' | 'fmnist5-9';
  method: 'linear' | 'vpt-deep';
  seed: number;
  epochs: number;
  /** SGD base learning rate (scaled by batch / 256); default BASE_LR[method]. */
  lr?: number;
  /**
   * 'test': train on 100 images per class of the line, score 100 others (the reported figures);
   * 'validation': the same sizes drawn from another seed of the line, disjoint from every test
   * image, for choosing the recipe (bench/pretrain.ts sweeps the lr there).
   */
  split: 'test' | 'validation';
  /** Benchmark line for task 'line'. */
  part: string;
  material: string;
  name: string;
}

export interface EvalResult {
  top1: number;
  auroc: number;
  escapeAtFrr10: number;
  seconds: number;
  trainImagesPerSec: number;
}

/** Prompt tokens per layer, as bench:transfer. */
const PROMPTS = 8;

/** SGD base learning rates (lr · batch / 256) of bench:transfer, the sweep's centre. */
export const BASE_LR = { linear: 4, 'vpt-deep': 2 } as const;

/** Seed of the validation split's images: another draw of the same line (test images: seed 0). */
const VALIDATION_SEED = 7;

/** 100 training + 100 validation images per class, drawn at the backbone's input size. */
function data(s: EvalSpec, imgSize: number) {
  const seed = s.split === 'test' ? 0 : VALIDATION_SEED;
  if (s.task === 'line') return { kind: 'parts', part: s.part, material: s.material, perClass: 200, size: imgSize, valFraction: 0.5, seed };
  // Fashion-MNIST is only scored ('test'), with the recipe the benchmark line's validation split chose.
  if (s.split !== 'test') throw new Error('pretrain-eval: Fashion-MNIST has no validation split here; sweep on the line');
  return { kind: 'fashion-mnist', classes: [5, 6, 7, 8, 9], limitPerClass: 100, valLimitPerClass: 100 };
}

/** Escape rate at the lowest threshold on 1 − p(ok) whose false-reject rate is ≤ 10 %. */
export function escapeAtFrr(score: number[], defect: boolean[], maxFrr = 0.1): number {
  const ok = score.filter((_, i) => !defect[i]).sort((a, b) => b - a);
  const allowed = Math.floor(maxFrr * ok.length); // good parts we may reject
  const t = allowed < ok.length ? ok[allowed]! : -Infinity; // reject when score > t
  const bad = score.filter((_, i) => defect[i]);
  return bad.filter((v) => v <= t).length / Math.max(1, bad.length);
}

export async function runEval(s: EvalSpec, imgSize: number): Promise<EvalResult> {
  const t0 = performance.now();
  const cfg = compileConfig.parse({
    name: s.name,
    backbone: { arch: s.arch, weights: s.weights },
    data: data(s, imgSize),
    method: { name: s.method, options: s.method === 'vpt-deep' ? { prompts: PROMPTS } : {} },
    recipe: { epochs: s.epochs, batchSize: 32, warmupEpochs: Math.max(1, Math.round(s.epochs / 10)), optimizer: { kind: 'sgd', lr: s.lr ?? BASE_LR[s.method], weightDecay: s.method === 'linear' ? 0 : 1e-4 } },
    seed: s.seed,
    engine: 'ort',
    output: { dir: join(repo, '.cache/bench/pretrain-eval', s.name) },
  });
  const p = await prepareJob(cfg, join(repo, 'bench/pretrain-eval.yaml'), { resume: false, progress: makeProgress('none') });
  const r = await train(p.job);
  // The last epoch's tensors: the epoch count is part of the recipe, chosen on the validation
  // split; picking the best epoch by the scored images would select on them.
  const last = readSafetensors(join(r.checkpointDir, 'params.safetensors')).tensors;
  const engine = await p.job.makeEngine(last);
  const classes = p.job.data.classes;
  const ok = classes.indexOf('ok');
  const score: number[] = [];
  const defect: boolean[] = [];
  try {
    for await (const b of p.job.data.valBatches(100)) {
      const logits = await engine.predict(b.x, b.y.length);
      const C = classes.length;
      for (let i = 0; i < b.y.length; i++) {
        const row = Array.from(logits.subarray(i * C, (i + 1) * C));
        const m = Math.max(...row);
        const e = row.map((v) => Math.exp(v - m));
        const z = e.reduce((a, v) => a + v, 0);
        score.push(ok >= 0 ? 1 - e[ok]! / z : NaN);
        defect.push(b.y[i] !== ok);
      }
    }
  } finally {
    engine.dispose();
  }
  const st = r.state;
  const seconds = st.history.reduce((a, h) => a + h.seconds, 0);
  return {
    top1: st.history.at(-1)!.valTop1,
    auroc: ok >= 0 ? auroc(score, defect) : NaN,
    escapeAtFrr10: ok >= 0 ? escapeAtFrr(score, defect) : NaN,
    seconds: (performance.now() - t0) / 1000,
    trainImagesPerSec: (p.job.data.trainSize * st.history.length) / seconds,
  };
}
