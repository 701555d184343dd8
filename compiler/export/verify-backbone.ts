/**
 * Run an exported backbone in onnxruntime and the same definition in tfjs on the same inputs;
 * report the largest output difference and top-1 agreement.
 */
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { TfOps } from '../ops/tf-ops.ts';
import { bindVit, forwardFeatures, forwardHead, preLogits } from '../backbones/vit.ts';
import type { VitConfig } from '../backbones/vit-variants.ts';
import type { StateDict } from '../backbones/safetensors.ts';
import { maxAbsDiff } from '../ops/host-tensor.ts';

export interface VerifyResult { maxAbsDiff: number; top1Agreement: number; images: number }

function argmaxRows(d: Float32Array, cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < d.length / cols; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (d[r * cols + c]! > d[r * cols + best]!) best = c;
    out.push(best);
  }
  return out;
}

export async function verifyBackboneExport(cfg: VitConfig, sd: StateDict, onnx: Uint8Array, images = 8, input?: Float32Array): Promise<VerifyResult> {
  const shape = [images, cfg.inChans, cfg.imgSize, cfg.imgSize];
  const x = input ?? (tf.tidy(() => tf.randomNormal(shape, 0, 1, 'float32', 7).dataSync()) as Float32Array);
  const ops = new TfOps();
  try {
    const w = bindVit(ops, cfg, sd);
    const ref = tf.tidy(() => {
      const feats = forwardFeatures(ops, cfg, w, tf.tensor(x, shape));
      return w.head ? forwardHead(ops, cfg, w, feats) : preLogits(ops, cfg, feats);
    });
    const a = (await ref.data()) as Float32Array;
    ref.dispose();
    const session = await ort.InferenceSession.create(onnx, { logSeverityLevel: 3 });
    const out = await session.run({ input: new ort.Tensor('float32', x, shape) });
    await session.release();
    const b = (out.logits ?? out.features)!.data as Float32Array;
    const cols = a.length / images;
    const ta = argmaxRows(a, cols);
    const tb = argmaxRows(b, cols);
    return { maxAbsDiff: maxAbsDiff(a, b), top1Agreement: ta.filter((v, i) => v === tb[i]).length / images, images };
  } finally {
    ops.dispose();
  }
}
