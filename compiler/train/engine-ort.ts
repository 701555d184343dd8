/**
 * The ort engine: whole training steps in onnxruntime. The method's forward is recorded once by
 * OnnxOps (trainable tensors as graph inputs, frozen weights folded into initializers), the
 * shared loss is appended, and reverse-mode autodiff adds backward nodes for the trainable
 * inputs only (compiler/train/training-graph.ts). One session runs forward + loss + backward
 * per step; a second, forward-only session serves `predict`. The batch is dynamic, so any batch
 * size runs without rebuilding. Parameters stay on the host and are fed every step: the trainer
 * owns them and the optimiser (optim.ts), exactly as with the tfjs engine.
 *
 * Dropout (VPT's prompt dropout): the training graph multiplies by `dropout_mask.<k>` inputs,
 * drawn here per step from mulberry32(mixSeed(seed, 'drop', step)) in recording order: 0 with
 * probability p, else 1/(1−p). A (seed, step) pair always draws the same masks, so a resumed
 * run repeats an uninterrupted one; the masks differ from the tfjs engine's (its own RNG).
 */
import * as ort from 'onnxruntime-node';
import { encodeModel } from '../ops/onnx-proto.ts';
import { type HostTensor, numel } from '../ops/host-tensor.ts';
import type { DropoutMask } from '../ops/onnx-ops.ts';
import { CompilerError } from '../ops/errors.ts';
import { mixSeed, mulberry32 } from '../../devices/rng.ts';
import type { Engine, StepResult } from './engine.ts';
import { smoothedTargets } from './loss.ts';
import { buildForwardGraph, buildTrainingGraph, type TaskGraphSpec } from './training-graph.ts';
import { openSession, ortVersion, type OrtSessionOptions } from './ort-session.ts';

export interface OrtEngineOptions extends TaskGraphSpec, OrtSessionOptions {
  labelSmoothing: number;
  seed: number;
}

/** Keys the dropout stream apart from the data streams that mix (seed, epoch, batch). */
const DROPOUT_STREAM = 0x64726f70; // 'drop'

interface Param {
  name: string;
  /** Shape as the trainer knows it (checkpoints). */
  shape: number[];
  /** Shape of the graph input (the patch weight is flattened there). */
  graphShape: number[];
  value: Float32Array;
}

export class OrtEngine implements Engine {
  readonly name = 'ort';
  readonly backend: string;
  readonly notes: string[];

  private constructor(
    private readonly o: OrtEngineOptions,
    private readonly train: ort.InferenceSession,
    private readonly forward: ort.InferenceSession,
    private readonly masks: DropoutMask[],
    private readonly grads: Map<string, string>,
    private readonly trainables: Param[],
    /** Trainable tensors the forward graph reads (a loss-only head is not among them). */
    private readonly forwardInputs: Set<string>,
    backend: string,
    notes: string[],
  ) {
    this.backend = backend;
    this.notes = notes;
  }

  /** Build the graphs and open the sessions (CUDA first when installed, else CPU). */
  static async create(o: OrtEngineOptions): Promise<OrtEngine> {
    const t0 = performance.now();
    const tg = buildTrainingGraph(o);
    const fwd = buildForwardGraph(o);
    const built = performance.now();
    const train = await openSession(encodeModel(tg.graph), o);
    const forward = await openSession(encodeModel(fwd), { ...o, ep: train.ep });
    const trainables: Param[] = [...o.params].map(([name, t]) => ({ name, shape: [...t.shape], graphShape: tg.paramShapes.get(name)!, value: Float32Array.from(t.data) }));
    const { forwardNodes, backwardNodes, unreached } = tg.gradient;
    const notes = [
      `training graph: ${forwardNodes} forward + ${backwardNodes} backward nodes, ${tg.masks.length} dropout mask(s), built in ${((built - t0) / 1000).toFixed(1)} s; sessions opened in ${((performance.now() - built) / 1000).toFixed(1)} s`,
      ...train.skipped.map((s) => `not used: ${s}`),
      ...(unreached.length ? [`no gradient reaches ${unreached.join(', ')} (they stay at their initial values)`] : []),
    ];
    const backend = `onnxruntime-node ${ortVersion()} ${train.ep}${train.ep === 'cpu' ? `, ${train.threads} threads` : ''}`;
    const forwardInputs = new Set(fwd.inputs.map((v) => v.name));
    return new OrtEngine(o, train.session, forward.session, tg.masks, tg.gradient.grads, trainables, forwardInputs, backend, notes);
  }

  private image(x: Float32Array, batch: number): ort.Tensor {
    const { inChans: C, imgSize: S } = this.o.cfg;
    if (x.length !== batch * C * S * S) throw new CompilerError('BAD_SHAPE', `ort engine: input has ${x.length} values, expected [${batch}, ${C}, ${S}, ${S}] = ${batch * C * S * S}`);
    return new ort.Tensor('float32', x, [batch, C, S, S]);
  }

  private paramFeeds(feeds: Record<string, ort.Tensor>, only?: Set<string>): void {
    for (const p of this.trainables) if (!only || only.has(p.name)) feeds[p.name] = new ort.Tensor('float32', p.value, p.graphShape);
  }

  /** Masks for (seed, step), in recording order. */
  private maskFeeds(feeds: Record<string, ort.Tensor>, batch: number, stepIndex: number): void {
    const rng = mulberry32(mixSeed(this.o.seed, DROPOUT_STREAM, stepIndex));
    for (const m of this.masks) {
      const dims = m.shape.map((d) => (d === 'N' ? batch : d));
      const keep = 1 / (1 - m.rate);
      const data = new Float32Array(numel(dims));
      for (let i = 0; i < data.length; i++) data[i] = rng() < m.rate ? 0 : keep;
      feeds[m.name] = new ort.Tensor('float32', data, dims);
    }
  }

  async step(x: Float32Array, y: Int32Array, stepIndex: number, inputs?: Map<string, HostTensor>): Promise<StepResult> {
    const B = y.length;
    const C = this.o.numClasses;
    const feeds: Record<string, ort.Tensor> = {
      input: this.image(x, B),
      targets: new ort.Tensor('float32', smoothedTargets(y, C, this.o.labelSmoothing), [B, C]),
    };
    this.paramFeeds(feeds);
    this.maskFeeds(feeds, B, stepIndex);
    for (const [name, t] of inputs ?? []) feeds[name] = new ort.Tensor('float32', t.data as Float32Array, t.shape);
    const out = await this.train.run(feeds, ['loss', ...this.grads.values()]);
    const grads = new Map<string, Float32Array>();
    for (const [name, output] of this.grads) grads.set(name, out[output]!.data as Float32Array);
    return { loss: (out.loss!.data as Float32Array)[0]!, grads };
  }

  async predict(x: Float32Array, batch: number): Promise<Float32Array> {
    const feeds: Record<string, ort.Tensor> = { input: this.image(x, batch) };
    this.paramFeeds(feeds, this.forwardInputs);
    const out = await this.forward.run(feeds, ['logits']);
    return out.logits!.data as Float32Array;
  }

  setParams(values: Map<string, Float32Array>): void {
    for (const [name, data] of values) {
      const p = this.trainables.find((q) => q.name === name);
      if (!p) throw new CompilerError('MISSING_TENSOR', `ort engine: no trainable tensor "${name}"`);
      if (data.length !== p.value.length) throw new CompilerError('BAD_SHAPE', `ort engine: "${name}" has ${data.length} values, expected ${p.value.length}`);
      p.value.set(data);
    }
  }

  params(): Map<string, HostTensor> {
    return new Map(this.trainables.map((p) => [p.name, { shape: [...p.shape], data: Float32Array.from(p.value) }]));
  }

  dispose(): void {
    void this.train.release();
    void this.forward.release();
  }
}
