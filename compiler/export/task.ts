/**
 * A trained task (backbone + method + trained tensors) as ONNX, through the same definition
 * the trainer ran, in three forms:
 * - `fused`   the method's export form with every weight/prompt-only value folded (deep prompts
 *             become per-layer constant prefix K/V): the artifact default, fastest;
 * - `naive`   prompts run as extra tokens (the training graph, weights still folded): the
 *             baseline fusion is measured against;
 * - `shared`  trained tensors are graph inputs, so one backbone session serves many tasks and a
 *             task update is a small prompt pack (backbone-pack.ts cuts this graph into the backbone
 *             that ships and the pack's tensors: for deep prompts, the prefix K/V).
 * Input `image` uint8 [N, H, W, 3] RGB with normalisation folded in (the device contract), or
 * `input` float [N, 3, H, W] normalised; outputs `logits`, `probs` and optionally `embedding`.
 */
import { OnnxOps } from '../ops/onnx-ops.ts';
import { TfOps } from '../ops/tf-ops.ts';
import { bindBackbone } from '../backbones/bind.ts';
import type { ClipTask } from '../backbones/clip-task.ts';
import type { VitConfig } from '../backbones/vit-variants.ts';
import type { StateDict } from '../backbones/safetensors.ts';
import type { PromptMethod } from '../methods/method.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import { CompilerError } from '../ops/errors.ts';

export type ExportForm = 'fused' | 'naive' | 'shared';

export interface TaskExport {
  cfg: VitConfig;
  /** Frozen backbone, head keys removed. */
  backbone: StateDict;
  method: PromptMethod<Record<string, unknown>>;
  options: Record<string, unknown>;
  /** Trained tensors by name (prompts, head; backbone keys too for `full`). */
  params: Map<string, HostTensor>;
  /** A CLIP backbone's text side: the class head is computed from it and folds to a constant. */
  clip?: ClipTask;
}

export interface TaskExportOptions {
  form?: ExportForm;
  input?: 'uint8-nhwc' | 'float-nchw';
  metadata?: Record<string, string>;
}

export function exportTask(t: TaskExport, opts: TaskExportOptions = {}): Uint8Array {
  const form = opts.form ?? 'fused';
  if (form === 'shared' && [...t.params.keys()].some((k) => t.backbone.has(k))) {
    throw new CompilerError('UNSUPPORTED', `${t.method.name} changes backbone weights, so there is no shared backbone to serve it from: export it fused`);
  }
  const u8 = (opts.input ?? 'uint8-nhwc') === 'uint8-nhwc';
  const folder = new TfOps();
  const ops = new OnnxOps({ folder, params: form === 'shared' ? 'input' : 'const', graphName: `${t.cfg.name}-${t.method.name}-${form}` });
  try {
    const param = (n: string) => {
      const v = t.params.get(n);
      if (!v) throw new CompilerError('MISSING_TENSOR', `trained tensors lack "${n}" needed by ${t.method.name}`);
      return ops.param(n, v);
    };
    if (form === 'shared' && t.clip) throw new CompilerError('UNSUPPORTED', `${t.method.name} on CLIP: the shared-backbone form is not built for CLIP tasks yet; export it fused`);
    const { w, clip } = bindBackbone(ops, t, (k) => t.params.has(k) && form === 'shared');
    if (t.params.has('head.weight') || !t.clip) w.head = { w: param('head.weight'), b: param('head.bias') };
    const { cfg } = t;
    const x = u8 ? ops.input('image', ['N', cfg.imgSize, cfg.imgSize, cfg.inChans], 'uint8') : ops.input('input', ['N', cfg.inChans, cfg.imgSize, cfg.imgSize]);
    const logits = t.method.forward({ ops, cfg, w, param, mode: form === 'naive' ? 'eval' : 'export', uint8Nhwc: u8, ...(clip ? { clip } : {}) }, x, t.options);
    ops.output(logits, 'logits');
    ops.output(ops.softmax(logits), 'probs');
    return ops.toBytes({ 'edgeprompt.arch': cfg.name, 'edgeprompt.method': t.method.name, 'edgeprompt.form': form, 'edgeprompt.input': u8 ? 'uint8-nhwc' : 'float-nchw', ...opts.metadata });
  } finally {
    ops.dispose();
    folder.dispose();
  }
}
