/**
 * What a prompt method is (docs/architecture.md "Methods, training and export"): its trainable
 * tensors and their initialisation, how it changes the backbone's forward pass, extra losses, and
 * its default recipe. The training loop and the exporters only see this interface.
 */
import type { Ops } from '../ops/ops.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import type { VitConfig } from '../backbones/vit-variants.ts';
import type { VitWeights } from '../backbones/vit.ts';
import type { StateDict } from '../backbones/safetensors.ts';
import type { z } from 'zod';
import type { ClipContext, ClipTask } from '../backbones/clip-task.ts';
import { normal, type Rng } from '../../devices/rng.ts';

/** Training images drawn for a method's data-dependent setup (SPT prototypes, DA-VPT class means). */
export interface ImageSample {
  /** [n, 3, S, S] float32, normalised as the backbone expects, training transforms applied. */
  x: HostTensor;
  /** [n] class indices. */
  y: Int32Array;
}

/**
 * Which training images to draw: `count` images uniformly with replacement (SPT's
 * `torch.randint` sample), or up to `perClass` images of every class without replacement
 * (DA-VPT's MappingSampler). Seeded from the job seed and `stream`, so a method's draws repeat.
 */
export type SampleRequest = { count: number; stream?: number } | { perClass: number; stream?: number };

export interface InitContext {
  cfg: VitConfig;
  numClasses: number;
  /** The frozen pretrained weights (read-only). */
  backbone: StateDict;
  rng: Rng;
  /**
   * Draw training images. Present when a job has data (training); absent in unit contexts, so a
   * method that needs data throws a clear error without it.
   */
  sample?: (request: SampleRequest) => Promise<ImageSample>;
  /** A CLIP backbone's text side (tokenizer, class names, zero-shot embeddings); absent for a plain ViT. */
  clip?: ClipTask;
}

/**
 * A method's own training state besides its tensors (DA-VPT's class→proxy mapping): plain JSON,
 * saved in checkpoints so a resumed run continues with the same state.
 */
export type MethodState = Record<string, unknown>;

export interface StateContext extends InitContext {
  /** Current values of the trainable tensors (trainer shapes). */
  params: Map<string, HostTensor>;
}

/** What `loss` sees besides the forward context. */
export interface LossContext<T> extends ForwardContext<T> {
  /** Smoothed one-hot targets [B, C] (label smoothing from the recipe). */
  targets: T;
  /** A per-batch input declared by `batchInputShapes` and filled by `batchInputs`. */
  input(name: string): T;
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
  /** A CLIP backbone: `w` is its image tower; this adds the projection, the text tower and the zero-shot classes. */
  clip?: ClipContext<T>;
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
  /**
   * Dassl's ConstantWarmupScheduler (CoOp, DAPT): the warmup runs at this fixed lr and the cosine
   * then spans all `epochs`, starting at the base lr. Absent: linear warmup from 0 (VPT).
   */
  warmupLr?: number;
  labelSmoothing: number;
  augment: { randomResizedCrop: boolean; hflip: boolean };
}

export interface PromptMethod<O> {
  readonly name: string;
  /** Defaults filled in for options the config leaves out; throws a ZodError naming each bad option. */
  resolveOptions(raw: Partial<O>): O;
  /** The options' schema, so a mistyped option name gets a spelling hint when the config loads. */
  readonly optionsSchema?: z.ZodType;
  /** Trainable tensors and their initial values, keyed by state-dict name (async when drawn from data). */
  init(ctx: InitContext, opts: O): Map<string, HostTensor> | Promise<Map<string, HostTensor>>;
  /** Backbone keys that train too (all of them for `full`, none for prompt methods). */
  trainsBackbone(key: string, opts: O): boolean;
  /** Logits [B, C] for images x [B, 3, H, W]. */
  forward<T>(ctx: ForwardContext<T>, x: T, opts: O): T;
  /** Whether weight decay applies to a trainable tensor (VPT: all but the head bias). */
  decays(name: string, opts: O): boolean;
  /**
   * A weight decay for this tensor other than the recipe's (SPT's `wd_head` on head.weight);
   * undefined keeps `decays` × the recipe's. Optional: methods without it decay uniformly.
   */
  weightDecayFor?(name: string, opts: O): number | undefined;
  recipe(opts: O): Recipe;
  /** The method needs a CLIP backbone (a text tower for its classes); a job on a plain ViT is refused. */
  readonly requiresClip?: boolean;

  // Optional training extensions. A method without them trains with softmax cross-entropy on
  // `forward`'s logits; the loop and both engines call these, so a method stays one file.

  /**
   * The training loss and the logits it was computed from (SA2VP: two heads; DA-VPT: CE plus a
   * metric loss). Written against Ops like `forward`, so both engines run the same definition.
   */
  loss?<T>(ctx: LossContext<T>, x: T, opts: O): { loss: T; logits: T };
  /** Shapes of per-batch inputs `loss` reads with `ctx.input` ('N' is the batch). */
  batchInputShapes?(opts: O, numClasses: number, ctx: { cfg: VitConfig; clip?: ClipTask }): Record<string, (number | 'N')[]>;
  /** Values of those inputs for one batch with labels y (e.g. one-hot of mapping[y]). */
  batchInputs?(y: Int32Array, state: MethodState, opts: O): Map<string, HostTensor>;
  /** Initial method state, after `init` (DA-VPT: the class→proxy mapping from class means). */
  initState?(ctx: StateContext, opts: O): Promise<MethodState>;
  /** Called after every training epoch with the current tensors; returns the next state. */
  epochEnd?(ctx: StateContext, state: MethodState, epoch: number, opts: O): Promise<MethodState>;
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

export function uniform(shape: number[], bound: number, rng: Rng): HostTensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (2 * rng() - 1) * bound;
  return { shape, data };
}

/**
 * The recipe the papers' official code shares (SPT, DA-VPT, SA2VP; docs/spec/): AdamW without
 * lr batch scaling, 100 epochs with 10 warmup, cosine per optimiser step, no label smoothing or
 * augmentation (their VTAB transforms). Methods pass what differs.
 */
export function adamwRecipe(o: { lr: number; weightDecay: number; batchSize: number }): Recipe {
  return {
    optimizer: { kind: 'adamw', lr: o.lr, scaleLrByBatch: false, momentum: 0.9, weightDecay: o.weightDecay, betas: [0.9, 0.999] },
    epochs: 100,
    warmupEpochs: 10,
    batchSize: o.batchSize,
    schedulePer: 'step',
    labelSmoothing: 0,
    augment: { randomResizedCrop: false, hflip: false },
  };
}
