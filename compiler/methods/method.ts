/**
 * What a prompt method is (ARCHITECTURE.md "Prompt methods"): its trainable tensors and their
 * initialisation, how it changes the backbone's forward pass, extra losses, and its default
 * recipe. The training loop and the exporters only see this interface.
 */
import type { Ops } from '../ops/ops.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import type { VitConfig } from '../backbones/vit-variants.ts';
import type { VitWeights } from '../backbones/vit.ts';
import type { StateDict } from '../backbones/safetensors.ts';

export type Rng = () => number;

export interface InitContext {
  cfg: VitConfig;
  numClasses: number;
  /** The frozen pretrained weights (read-only). */
  backbone: StateDict;
  rng: Rng;
}

export interface ForwardContext<T> {
  ops: Ops<T>;
  cfg: VitConfig;
  /** Backbone weights bound to the interpreter (trainable ones included for `full`). */
  w: VitWeights<T>;
  /** A trainable tensor of this method, by name. */
  param(name: string): T;
  /** 'train' enables dropout; 'export' may use folded forms (fusion). */
  mode: 'train' | 'eval' | 'export';
  /** Images arrive as [B, H, W, 3] uint8 (the artifact's input contract) instead of normalised NCHW. */
  uint8Nhwc?: boolean;
}

export interface OptimizerRecipe {
  kind: 'sgd' | 'adamw';
  /** Base learning rate before batch scaling. */
  lr: number;
  /** VPT scales lr by batch/256; others use lr as given. */
  scaleLrByBatch: boolean;
  momentum: number;
  weightDecay: number;
  betas: [number, number];
}

export interface Recipe {
  optimizer: OptimizerRecipe;
  epochs: number;
  warmupEpochs: number;
  batchSize: number;
  /** 'epoch': lr changes per epoch (VPT's WarmupCosineSchedule); 'step': per optimiser step. */
  schedulePer: 'epoch' | 'step';
  labelSmoothing: number;
  augment: { randomResizedCrop: boolean; hflip: boolean };
}

export interface PromptMethod<O> {
  readonly name: string;
  /** Defaults filled in for options the config leaves out. */
  resolveOptions(raw: Partial<O>): O;
  /** Trainable tensors and their initial values, keyed by state-dict name. */
  init(ctx: InitContext, opts: O): Map<string, HostTensor>;
  /** Backbone keys that train too (all of them for `full`, none for prompt methods). */
  trainsBackbone(key: string, opts: O): boolean;
  /** Logits [B, C] for images x [B, 3, H, W]. */
  forward<T>(ctx: ForwardContext<T>, x: T, opts: O): T;
  /** Whether weight decay applies to a trainable tensor (VPT: all but the head bias). */
  decays(name: string, opts: O): boolean;
  recipe(opts: O): Recipe;
}

/** The linear head every method shares: timm names, VPT's init (kaiming fan_out, bias −log 99 is VPT-only). */
export function headInit(ctx: InitContext, std: number, bias = 0): Map<string, HostTensor> {
  const D = ctx.cfg.embedDim;
  const C = ctx.numClasses;
  const w = new Float32Array(C * D);
  for (let i = 0; i < w.length; i++) w[i] = std * normal(ctx.rng);
  return new Map([
    ['head.weight', { shape: [C, D], data: w }],
    ['head.bias', { shape: [C], data: new Float32Array(C).fill(bias) }],
  ]);
}

export function normal(rng: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

export function uniform(shape: number[], bound: number, rng: Rng): HostTensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (2 * rng() - 1) * bound;
  return { shape, data };
}
