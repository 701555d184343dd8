/**
 * Proof that an exported task computes what was trained: the training graph (TfOps, float
 * NCHW normalised input) and the ONNX model in onnxruntime (the device's uint8 NHWC input) on
 * the same validation images. Reports the largest logit difference, top-1 agreement and each
 * side's accuracy against the labels.
 */
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { TfOps } from '../ops/tf-ops.ts';
import { bindBackbone } from '../backbones/bind.ts';
import type { LabeledSet } from '../data/types.ts';
import { preprocessFor, toBatch } from '../data/transforms.ts';
import type { TaskExport } from './task.ts';

export interface TaskVerification {
  images: number;
  maxAbsDiff: number;
  /** The largest |logit| of the training graph: float32 rounding grows with it. */
  maxAbsReference: number;
  top1Agreement: number;
  /** Accuracy of the training graph and of the exported model against the labels. */
  top1Reference: number;
  top1Exported: number;
}

const argmax = (d: Float32Array, row: number, C: number) => {
  let b = 0;
  for (let c = 1; c < C; c++) if (d[row * C + c]! > d[row * C + b]!) b = c;
  return b;
};

/** Logits of the training graph (eval mode) for a set, in batches. */
export function referenceLogits(task: TaskExport, set: LabeledSet, batch = 64): Float32Array {
  const { cfg } = task;
  const ops = new TfOps();
  const { w, clip } = bindBackbone(ops, task);
  if (task.params.has('head.weight')) w.head = { w: ops.weight('head.weight', task.params.get('head.weight')!), b: ops.weight('head.bias', task.params.get('head.bias')!) };
  const pre = preprocessFor(cfg);
  const C = task.clip ? task.clip.classNames.length : cfg.numClasses;
  const out = new Float32Array(set.samples.length * C);
  try {
    for (let i = 0; i < set.samples.length; i += batch) {
      const rows = set.samples.slice(i, i + batch);
      const b = toBatch(rows, pre);
      const y = tf.tidy(() => task.method.forward({ ops, cfg, w, param: (n) => ops.weight(n, task.params.get(n)!), mode: 'eval', ...(clip ? { clip } : {}) }, tf.tensor(b.x, [rows.length, 3, cfg.imgSize, cfg.imgSize]), task.options));
      out.set(y.dataSync() as Float32Array, i * C);
      y.dispose();
    }
  } finally {
    ops.dispose();
  }
  return out;
}

/** Logits of an exported model (uint8 NHWC input `image`) for a set; extra graph inputs from `feeds`. */
export async function exportedLogits(model: Uint8Array | ort.InferenceSession, set: LabeledSet, extra: Record<string, ort.Tensor> = {}, batch = 64): Promise<Float32Array> {
  const session = model instanceof Uint8Array ? await ort.InferenceSession.create(model, { logSeverityLevel: 3 }) : model;
  const S = set.size;
  const parts: Float32Array[] = [];
  for (let i = 0; i < set.samples.length; i += batch) {
    const rows = set.samples.slice(i, i + batch);
    const img = new Uint8Array(rows.length * S * S * 3);
    rows.forEach((s, j) => img.set(s.image, j * S * S * 3));
    const r = await session.run({ image: new ort.Tensor('uint8', img, [rows.length, S, S, 3]), ...extra }, ['logits']);
    parts.push(r.logits!.data as Float32Array);
  }
  if (model instanceof Uint8Array) await session.release();
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function compareLogits(a: Float32Array, b: Float32Array, labels: readonly number[], C: number): TaskVerification {
  let max = 0;
  let scale = 0;
  let agree = 0;
  let okA = 0;
  let okB = 0;
  for (let i = 0; i < a.length; i++) {
    max = Math.max(max, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(a[i]!));
  }
  labels.forEach((y, r) => {
    const pa = argmax(a, r, C);
    const pb = argmax(b, r, C);
    if (pa === pb) agree++;
    if (pa === y) okA++;
    if (pb === y) okB++;
  });
  const n = labels.length;
  return { images: n, maxAbsDiff: max, maxAbsReference: scale, top1Agreement: agree / n, top1Reference: okA / n, top1Exported: okB / n };
}

export async function verifyTask(task: TaskExport, model: Uint8Array, val: LabeledSet, reference?: Float32Array): Promise<TaskVerification> {
  const ref = reference ?? referenceLogits(task, val);
  const got = await exportedLogits(model, val);
  return compareLogits(ref, got, val.samples.map((s) => s.label), task.cfg.numClasses);
}
