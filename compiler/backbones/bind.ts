/**
 * The frozen backbone of a task bound to an interpreter, in the one place the engines, the
 * training graph, the exporter and the verifier share: a timm ViT, or a CLIP whose image tower
 * is that ViT (ForwardContext.w) with its projection, text tower and zero-shot classes beside it
 * (ForwardContext.clip). Trained tensors that are backbone keys (`full`) replace the frozen ones.
 */
import type { Ops } from '../ops/ops.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import type { StateDict } from './safetensors.ts';
import type { VitConfig } from './vit-variants.ts';
import { bindVit, type VitWeights } from './vit.ts';
import { clipContext, type ClipContext, type ClipTask } from './clip-task.ts';

export interface BackboneSpec {
  cfg: VitConfig;
  /** Frozen weights (head keys removed; for CLIP also the text tower and projections). */
  backbone: StateDict;
  /** Trained tensors; those that are backbone keys override the frozen values. */
  params: Map<string, HostTensor>;
  clip?: ClipTask;
}

export function bindBackbone<T>(ops: Ops<T>, s: BackboneSpec, trainable: (key: string) => boolean = () => false): { w: VitWeights<T>; clip?: ClipContext<T> } {
  const sd: StateDict = new Map(s.backbone);
  for (const [k, v] of s.params) if (s.backbone.has(k)) sd.set(k, v);
  if (!s.clip) return { w: bindVit(ops, s.cfg, sd, trainable) };
  const clip = clipContext(ops, s.clip, sd, trainable);
  return { w: clip.image.vision, clip };
}
