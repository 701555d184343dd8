// onnxruntime sessions over an artifact's model, created with the device profile's execution
// providers in order (providers.ts), in the profile's engine (engine.ts: a worker thread by
// default). ModelSession runs a fused .epk; BackboneSession (backbone.ts) runs a shared-backbone
// .epk with a prompt pack's tensors fed beside the frames. Both copy frames once into one NHWC
// uint8 buffer with a memcpy each (none for a single frame in-thread): no per-pixel JavaScript.

import * as ort from 'onnxruntime-node';
import { isBackbone, type Artifact, type ModelArtifact } from '../artifact/read.ts';
import type { Manifest } from '../artifact/manifest.ts';
import type { ArtifactRef } from '../schema/payloads.ts';
import type { Engine, EngineSession } from './engine.ts';
import { SessionError, type EpAttempt } from './errors.ts';
import { errText, openWithFallback, type SessionOptions } from './providers.ts';
import type { BatchResult, ModelTask, Prediction } from './task.ts';
import { topK } from './topk.ts';

export type { SessionOptions } from './providers.ts';

/** The identity reported with every result and in state/health. */
export const artifactRef = (a: { manifest: { name: string; version: string }; sha256: string }): ArtifactRef => ({ name: a.manifest.name, version: a.manifest.version, sha256: a.sha256 });

/** What both session kinds share: the ORT session, its provider, batching and release. */
export abstract class OrtSession {
  private released = false;
  private busy = false;
  private scratch: Uint8Array | null = null;
  /** Time the warm-up runs took (set once by create()). */
  warmupMs = 0;

  protected constructor(
    protected readonly session: EngineSession,
    readonly artifact: ModelArtifact,
    /** The execution provider in use. */
    readonly ep: string,
    /** Every provider tried, in order, with the failures. */
    readonly attempts: readonly EpAttempt[],
    /** Model batch dimension when fixed (e.g. a static TensorRT engine), else null. */
    protected readonly fixedBatch: number | null,
    readonly maxBatch: number,
    /** Where the session runs (the profile's threads.inference). */
    protected readonly engine: Engine,
  ) {}

  get input(): Manifest['input'] {
    return this.artifact.manifest.input;
  }
  /** The model artifact: what results report as `model`. */
  get ref(): ArtifactRef {
    return artifactRef(this.artifact);
  }
  get frameBytes(): number {
    const i = this.input;
    return i.height * i.width * i.channels;
  }

  /** Zero frames at batch 1 (and once at maxBatch, so shape-specialising EPs build both). */
  protected async warmUp(runs: number, labels: readonly string[], feeds: Record<string, ort.Tensor>): Promise<void> {
    if (runs === 0) return;
    const zero = new Uint8Array(this.frameBytes);
    for (let i = 0; i < runs; i++) await this.runFrames([zero], 1, labels, feeds);
    if (this.maxBatch > 1 && this.fixedBatch === null) await this.runFrames(new Array<Uint8Array>(this.maxBatch).fill(zero), 1, labels, feeds);
  }

  /** Classifies frames (each H×W×3 uint8, the input's size) in one batched run, `feeds` beside the image. */
  protected async runFrames(frames: readonly Uint8Array[], k: number, labels: readonly string[], feeds: Record<string, ort.Tensor>): Promise<BatchResult> {
    if (this.released) throw new SessionError('SESSION_RELEASED', `${this.artifact.file}: run() after release()`);
    const fb = this.frameBytes;
    frames.forEach((f, i) => {
      if (f.length !== fb) {
        const { height: h, width: w } = this.input;
        throw new SessionError('BAD_FRAME', `frame ${i} has ${f.length} bytes; the model takes ${w}x${h}x3 = ${fb} (is the camera scaled to the model's input size?)`);
      }
    });
    const startedAt = Date.now();
    const t0 = performance.now();
    const predictions: Prediction[] = [];
    const chunk = this.fixedBatch ?? frames.length;
    for (let at = 0; at < frames.length; at += chunk) {
      const part = frames.slice(at, at + chunk);
      predictions.push(...(await this.runChunk(part, this.fixedBatch ?? part.length, k, labels, feeds)));
    }
    return { predictions, inferMs: performance.now() - t0, startedAt };
  }

  private async runChunk(frames: readonly Uint8Array[], n: number, k: number, labels: readonly string[], extra: Record<string, ort.Tensor>): Promise<Prediction[]> {
    const { input, outputs } = this.artifact.manifest;
    const fb = this.frameBytes;
    let data: Uint8Array;
    // In-thread, one scratch buffer serves every run but a concurrent one; the worker engine pools
    // its own buffers (they travel to the worker and back).
    const reuse = !this.busy && this.engine.zeroCopyFrames;
    if (n === 1 && frames.length === 1 && this.engine.zeroCopyFrames) data = frames[0]!; // zero copy
    else {
      if (reuse && (this.scratch === null || this.scratch.length < n * fb)) this.scratch = new Uint8Array(Math.max(n, this.maxBatch) * fb);
      data = reuse ? this.scratch!.subarray(0, n * fb) : this.engine.frameBuffer(n * fb);
      frames.forEach((f, i) => data.set(f, i * fb));
      if (frames.length < n) data.fill(0, frames.length * fb); // padding for a fixed batch
    }
    const feeds = { ...extra, [input.name]: new ort.Tensor('uint8', data, [n, input.height, input.width, 3]) };
    if (reuse) this.busy = true;
    let out: Awaited<ReturnType<EngineSession['run']>>;
    try {
      out = await this.session.run(feeds, [outputs.probs, outputs.logits]);
    } catch (e) {
      throw new SessionError('INFERENCE_FAILED', `${this.artifact.file}: inference failed on ${this.ep}: ${errText(e)}`, [], { cause: e });
    } finally {
      if (reuse) this.busy = false;
    }
    const probs = out[outputs.probs]!.data as Float32Array;
    const logits = out[outputs.logits]!.data as Float32Array;
    const c = labels.length;
    const preds: Prediction[] = [];
    for (let i = 0; i < frames.length; i++) {
      const p = probs.subarray(i * c, (i + 1) * c);
      const top = topK(p, labels, Math.max(1, k));
      const best = top[0]!;
      preds.push({ index: labels.indexOf(best.label), label: best.label, score: best.score, topK: top, probs: p, logits: logits.subarray(i * c, (i + 1) * c) });
    }
    return preds;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.session.release();
  }
}

/** A fused artifact: the session is its own (only) task. */
export class ModelSession extends OrtSession implements ModelTask {
  declare readonly artifact: Artifact;
  readonly prompt = null;

  get manifest(): Manifest {
    return this.artifact.manifest;
  }

  static async create(artifact: Artifact, opts: SessionOptions): Promise<ModelSession> {
    if (isBackbone(artifact)) {
      throw new SessionError('SESSION_UNSUPPORTED', `${artifact.file}: a shared-backbone artifact runs only with a prompt pack (BackboneSession); name the pack in the device config (pack:)`);
    }
    return openWithFallback(artifact, opts, async (session, ep, attempts, engine) => {
      const fixedBatch = checkIo(session, artifact, artifact.manifest.labels.length);
      const s = new ModelSession(session, artifact, ep, attempts, fixedBatch, fixedBatch ?? opts.maxBatch ?? opts.profile.maxBatch, engine);
      const w0 = performance.now();
      await s.warmUp(opts.warmupRuns ?? opts.profile.warmupRuns, artifact.manifest.labels, {});
      s.warmupMs = performance.now() - w0;
      return s;
    });
  }

  /** Classifies frames (each H×W×3 uint8, the manifest's input size) in one batched run. */
  run(frames: readonly Uint8Array[], k = 5): Promise<BatchResult> {
    return this.runFrames(frames, k, this.manifest.labels, {});
  }
}

/**
 * Checks the graph's image input and outputs against the manifest; returns the fixed batch size,
 * or null when dynamic. `classes`: the label count the outputs must have (null: symbolic, from a pack).
 */
export function checkIo(s: EngineSession, a: ModelArtifact, classes: number | null, problems: string[] = []): number | null {
  const m = a.manifest;
  const inMeta = s.inputMetadata.find((x) => x.name === m.input.name);
  let fixedBatch: number | null = null;
  if (!inMeta) problems.push(`input ${m.input.name} is not a graph input (graph inputs: ${s.inputNames.join(', ')})`);
  else if (inMeta.isTensor) {
    if (inMeta.type !== 'uint8') problems.push(`input ${m.input.name} is ${inMeta.type}, the manifest says uint8`);
    const [n, h, w, c] = inMeta.shape;
    if (inMeta.shape.length !== 4 || h !== m.input.height || w !== m.input.width || c !== 3) {
      problems.push(`input ${m.input.name} has shape [${inMeta.shape.join(', ')}], the manifest says [N, ${m.input.height}, ${m.input.width}, 3]`);
    }
    if (typeof n === 'number' && n > 0) fixedBatch = n;
  }
  for (const key of ['logits', 'probs'] as const) {
    const name = m.outputs[key];
    const meta = s.outputMetadata.find((x) => x.name === name);
    if (!meta) problems.push(`output ${name} (outputs.${key}) is not a graph output (graph outputs: ${s.outputNames.join(', ')})`);
    else if (meta.isTensor && classes !== null) {
      const c = meta.shape.at(-1);
      if (typeof c === 'number' && c !== classes) problems.push(`output ${name} has ${c} classes but the manifest has ${classes} labels`);
    }
  }
  if (m.outputs.embedding !== undefined && !s.outputNames.includes(m.outputs.embedding)) problems.push(`output ${m.outputs.embedding} (outputs.embedding) is not a graph output`);
  if (problems.length > 0) throw new SessionError('SESSION_IO_MISMATCH', `${a.file}: the model does not match its manifest: ${problems.join('; ')}`);
  return fixedBatch;
}
