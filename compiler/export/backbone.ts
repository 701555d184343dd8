/**
 * The bare backbone as ONNX: the same `vit.ts` definition, recorded by OnnxOps with weights
 * folded. Input `input` float32 [N, 3, H, W] (normalised, as timm takes it); outputs `logits`
 * and `probs`, or `features` [N, D] when the checkpoint has no head.
 */
import { OnnxOps } from '../ops/onnx-ops.ts';
import { TfOps } from '../ops/tf-ops.ts';
import { bindVit, forwardFeatures, forwardHead, preLogits } from '../backbones/vit.ts';
import type { VitConfig } from '../backbones/vit-variants.ts';
import type { StateDict } from '../backbones/safetensors.ts';

export interface ExportOptions {
  /** Fold weight-only sub-expressions into initializers (default true). */
  fold?: boolean;
  /** Compute only the CLS row in the last block (default true; exact when the head reads CLS). */
  clsOnlyLastBlock?: boolean;
  /** 'float-nchw': `input` [N,3,H,W] normalised (timm's contract, default). 'uint8-nhwc': `image` [N,H,W,3] uint8 RGB, normalisation folded in (the device contract). */
  input?: 'float-nchw' | 'uint8-nhwc';
}

export function exportVitBackbone(cfg: VitConfig, sd: StateDict, opts: ExportOptions = {}): Uint8Array {
  const folder = opts.fold === false ? null : new TfOps();
  const ops = new OnnxOps({ folder, graphName: cfg.name });
  try {
    const w = bindVit(ops, cfg, sd);
    const u8 = opts.input === 'uint8-nhwc';
    const x = u8 ? ops.input('image', ['N', cfg.imgSize, cfg.imgSize, cfg.inChans], 'uint8') : ops.input('input', ['N', cfg.inChans, cfg.imgSize, cfg.imgSize]);
    const feats = forwardFeatures(ops, cfg, w, x, { clsOnlyLastBlock: opts.clsOnlyLastBlock ?? true, uint8Nhwc: u8 });
    if (w.head) {
      const logits = forwardHead(ops, cfg, w, feats);
      ops.output(logits, 'logits');
      ops.output(ops.softmax(logits), 'probs');
    } else {
      ops.output(preLogits(ops, cfg, feats), 'features');
    }
    return ops.toBytes({ 'edgeprompt.arch': cfg.name, 'edgeprompt.kind': 'backbone', 'edgeprompt.mean': cfg.mean.join(','), 'edgeprompt.std': cfg.std.join(',') });
  } finally {
    ops.dispose();
    folder?.dispose();
  }
}
