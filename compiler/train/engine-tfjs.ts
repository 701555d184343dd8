/**
 * The tfjs engine: the method's forward through TfOps, the shared softmax cross-entropy with
 * label smoothing (loss.ts), gradients for the trainable tensors only (frozen linears take the
 * custom-grad fast path). Runs on whatever backend `initTf` chose (tfjs-node-gpu, tfjs-node or
 * wasm).
 */
import * as tf from '@tensorflow/tfjs';
import { TfOps } from '../ops/tf-ops.ts';
import { bindBackbone } from '../backbones/bind.ts';
import type { ClipTask } from '../backbones/clip-task.ts';
import type { VitConfig } from '../backbones/vit-variants.ts';
import type { StateDict } from '../backbones/safetensors.ts';
import type { PromptMethod } from '../methods/method.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import type { Engine, StepResult } from './engine.ts';
import { methodLoss, smoothedTargets } from './loss.ts';
import { CompilerError } from '../ops/errors.ts';

export interface TfEngineOptions {
  cfg: VitConfig;
  backbone: StateDict;
  method: PromptMethod<Record<string, unknown>>;
  options: Record<string, unknown>;
  /** Initial values of every trainable tensor (method params and, for `full`, backbone keys). */
  params: Map<string, HostTensor>;
  numClasses: number;
  labelSmoothing: number;
  seed: number;
  backend: string;
  /** A CLIP backbone's text side. */
  clip?: ClipTask;
}

export class TfEngine implements Engine {
  readonly name = 'tfjs';
  readonly backend: string;
  private readonly train: TfOps;
  private readonly vars: tf.Variable[];
  private readonly byName: Map<string, tf.Variable>;
  private readonly forward: (x: tf.Tensor, training: boolean) => tf.Tensor;
  private readonly loss: (x: tf.Tensor, targets: tf.Tensor, inputs: Map<string, tf.Tensor>) => tf.Tensor;

  constructor(private readonly o: TfEngineOptions) {
    this.backend = o.backend;
    this.train = new TfOps({ training: true, seed: o.seed });
    const ops = this.train;
    const trainable = (k: string) => o.params.has(k);
    // Full fine-tuning starts from the given values (bindBackbone puts them over the frozen ones).
    const { w, clip } = bindBackbone(ops, o, trainable);
    // Method tensors that are not backbone keys (prompts, head) become variables here.
    for (const [k, v] of o.params) if (!o.backbone.has(k) || k.startsWith('head.')) ops.param(k, v);
    if (o.params.has('head.weight')) w.head = { w: ops.param('head.weight', o.params.get('head.weight')!), b: ops.param('head.bias', o.params.get('head.bias')!) };
    this.byName = new Map([...ops.params.entries()]);
    this.vars = [...this.byName.values()];
    const param = (n: string) => ops.param(n, o.params.get(n)!);
    this.forward = (x, training) => {
      ops.training = training;
      return o.method.forward({ ops, cfg: o.cfg, w, param, mode: training ? 'train' : 'eval', ...(clip ? { clip } : {}) }, x, o.options);
    };
    this.loss = (x, targets, inputs) => {
      ops.training = true;
      const input = (n: string) => {
        const t = inputs.get(n);
        if (!t) throw new CompilerError('MISSING_TENSOR', `${o.method.name}: per-batch input "${n}" was not provided`);
        return t;
      };
      return methodLoss(o.method, { ops, cfg: o.cfg, w, param, mode: 'train', targets, input, ...(clip ? { clip } : {}) }, x, o.options).loss;
    };
  }

  private input(x: Float32Array, batch: number): tf.Tensor {
    const S = this.o.cfg.imgSize;
    return tf.tensor(x, [batch, 3, S, S]);
  }

  step(x: Float32Array, y: Int32Array, stepIndex: number, inputs?: Map<string, HostTensor>): StepResult {
    const B = y.length;
    this.train.reseed(this.o.seed * 1_000_003 + stepIndex);
    const C = this.o.numClasses;
    const xs = this.input(x, B);
    const targets = tf.tensor(smoothedTargets(y, C, this.o.labelSmoothing), [B, C]);
    const extra = new Map([...(inputs ?? [])].map(([k, t]) => [k, tf.tensor(t.data, [...t.shape])] as const));
    // The loss both engines share (loss.ts), so the ort engine differentiates the same definition.
    const { value, grads } = tf.variableGrads(() => this.loss(xs, targets, extra) as tf.Scalar, this.vars);
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.byName) out.set(name, grads[v.name]!.dataSync() as Float32Array);
    const loss = value.dataSync()[0]!;
    tf.dispose([xs, targets, value, ...extra.values(), ...Object.values(grads)]);
    return { loss, grads: out };
  }

  predict(x: Float32Array, batch: number): Float32Array {
    const xs = this.input(x, batch);
    const logits = tf.tidy(() => this.forward(xs, false));
    const out = logits.dataSync() as Float32Array;
    tf.dispose([xs, logits]);
    return out;
  }

  setParams(values: Map<string, Float32Array>): void {
    for (const [name, data] of values) {
      const v = this.byName.get(name);
      if (!v) throw new Error(`internal: no trainable tensor "${name}"`);
      tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
    }
  }

  params(): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    // The trainer's shapes (the patch weight is a [D, C·p·p] variable here but [D, C, p, p] in checkpoints).
    for (const [name, v] of this.byName) out.set(name, { shape: [...(this.o.params.get(name)?.shape ?? v.shape)], data: v.dataSync() as Float32Array });
    return out;
  }

  dispose(): void {
    this.train.dispose();
  }
}
