/**
 * The ort engine's graphs, recorded from the same method definition the tfjs engine runs:
 * - training: `input` float [N, 3, S, S], `targets` float [N, C] (smoothed one-hot), every
 *   trainable tensor as a graph input, one `dropout_mask.<k>` input per dropout the forward
 *   draws; outputs `loss`, `logits` and `grad:<name>` per trainable tensor. Frozen weights are
 *   initializers and every weight-only expression is folded (cls + pos[0], Wᵀ), as at export.
 * - forward: the eval-mode graph with the same parameter inputs; outputs `logits`.
 * The batch stays the dynamic 'N', so one graph serves every batch size.
 */
import { OnnxOps, type DropoutMask } from '../ops/onnx-ops.ts';
import { TfOps } from '../ops/tf-ops.ts';
import { bindBackbone } from '../backbones/bind.ts';
import type { ClipTask } from '../backbones/clip-task.ts';
import type { VitConfig } from '../backbones/vit-variants.ts';
import type { StateDict } from '../backbones/safetensors.ts';
import type { PromptMethod } from '../methods/method.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import type { GraphSpec } from '../ops/onnx-proto.ts';
import { CompilerError } from '../ops/errors.ts';
import { methodLoss } from './loss.ts';
import { differentiate, type GradientGraph } from './autodiff/differentiate.ts';

export interface TaskGraphSpec {
  cfg: VitConfig;
  /** Frozen backbone (head keys removed). */
  backbone: StateDict;
  method: PromptMethod<Record<string, unknown>>;
  options: Record<string, unknown>;
  /** Every trainable tensor (method tensors and, for `full`, backbone keys) with its current value. */
  params: Map<string, HostTensor>;
  numClasses: number;
  /** A CLIP backbone's text side. */
  clip?: ClipTask;
}

export interface TrainingGraph {
  graph: GraphSpec;
  gradient: GradientGraph;
  masks: DropoutMask[];
  /** Graph input shape of each trainable tensor (the patch weight is [D, C·p·p] there). */
  paramShapes: Map<string, number[]>;
}

function record(s: TaskGraphSpec, mode: 'train' | 'eval'): { graph: GraphSpec; masks: DropoutMask[]; paramShapes: Map<string, number[]> } {
  const { cfg, method, options, params } = s;
  const folder = new TfOps();
  const ops = new OnnxOps({ folder, params: 'input', dropout: mode === 'train' ? 'mask' : 'identity', graphName: `${cfg.name}-${method.name}-${mode}` });
  try {
    const param = (n: string) => {
      const v = params.get(n);
      if (!v) throw new CompilerError('MISSING_TENSOR', `${method.name}: trainable tensor "${n}" has no value`);
      return ops.param(n, v);
    };
    const { w, clip } = bindBackbone(ops, s, (k) => params.has(k));
    const withClip = clip ? { clip } : {};
    if (params.has('head.weight')) w.head = { w: param('head.weight'), b: param('head.bias') };
    const x = ops.input('input', ['N', cfg.inChans, cfg.imgSize, cfg.imgSize]);
    if (mode === 'train') {
      const targets = ops.input('targets', ['N', s.numClasses]);
      const shapes = method.batchInputShapes?.(options, s.numClasses, { cfg, ...(s.clip ? { clip: s.clip } : {}) }) ?? {};
      const made = new Map<string, ReturnType<typeof ops.input>>();
      const input = (n: string) => {
        const shape = shapes[n];
        if (!shape) throw new CompilerError('MISSING_TENSOR', `${method.name}: per-batch input "${n}" is not declared in batchInputShapes`);
        if (!made.has(n)) made.set(n, ops.input(n, shape));
        return made.get(n)!;
      };
      const { loss, logits } = methodLoss(method, { ops, cfg, w, param, mode, targets, input, ...withClip }, x, options);
      ops.output(loss, 'loss');
      ops.output(logits, 'logits');
    } else {
      ops.output(method.forward({ ops, cfg, w, param, mode, ...withClip }, x, options), 'logits');
    }
    const graph = ops.graph();
    const paramShapes = new Map<string, number[]>();
    for (const v of graph.inputs) if (params.has(v.name)) paramShapes.set(v.name, v.shape as number[]);
    // Only the training graph must read every trainable tensor; an eval forward may skip the ones
    // that enter the loss alone (pretraining's patch-level heads).
    if (mode === 'train') for (const k of params.keys()) if (!paramShapes.has(k)) throw new CompilerError('UNSUPPORTED', `${method.name}: trainable tensor "${k}" is not used by the forward pass, so it cannot be trained`);
    return { graph, masks: ops.dropoutMasks(), paramShapes };
  } finally {
    ops.dispose();
    folder.dispose();
  }
}

/** Forward + loss + backward for the trainable tensors, as one graph. */
export function buildTrainingGraph(s: TaskGraphSpec): TrainingGraph {
  const { graph, masks, paramShapes } = record(s, 'train');
  const gradient = differentiate(graph, { loss: 'loss', wrt: [...paramShapes.keys()], keep: ['logits'] });
  return { graph: gradient.graph, gradient, masks, paramShapes };
}

/** The eval-mode forward (logits) with the trainable tensors it reads as inputs. */
export function buildForwardGraph(s: TaskGraphSpec): GraphSpec {
  return record(s, 'eval').graph;
}
