// One onnxruntime session over an artifact's model, created with the device profile's execution
// providers in order. onnxruntime-node throws when an EP's libraries are missing (it does not fall
// back by itself, STACK.md §1), so each provider is tried in turn — with the ones after it as ORT's
// per-node fallbacks — and warmed up; every failure is kept and reported, and the first provider
// that works is the one in use. If none works, EP_ALL_FAILED lists them all (STYLE.md §6).

import * as ort from 'onnxruntime-node';
import type { Artifact } from '../artifact/read.ts';
import type { Manifest } from '../artifact/manifest.ts';
import type { DeviceProfile, ExecutionProvider } from '../config/profile.ts';
import type { ArtifactRef, LabelScore } from '../schema/payloads.ts';
import type { Log } from '../mqtt/log.ts';
import { SessionError, type EpAttempt } from './errors.ts';
import { topK } from './topk.ts';

export interface SessionOptions {
  profile: DeviceProfile;
  /** Overrides profile.warmupRuns. */
  warmupRuns?: number;
  /** Overrides profile.maxBatch. */
  maxBatch?: number;
  log?: Log;
}

export interface Prediction {
  index: number;
  label: string;
  score: number;
  topK: LabelScore[];
  /** Views into the run's output tensors ([C] each). */
  probs: Float32Array;
  logits: Float32Array;
}

export interface BatchResult {
  predictions: Prediction[];
  /** Wall time of session.run (all chunks). */
  inferMs: number;
  /** Epoch ms when the run started. */
  startedAt: number;
}

/** The identity reported with every result and in state/health. */
export const artifactRef = (a: Artifact): ArtifactRef => ({ name: a.manifest.name, version: a.manifest.version, sha256: a.sha256 });

function providerOption(ep: ExecutionProvider): ort.InferenceSession.ExecutionProviderConfig {
  return ep.name === 'cpu' ? 'cpu' : { name: ep.name, deviceId: ep.deviceId };
}

/** The Node binding passes only deviceId to TensorRT; its other settings are read from the environment. */
function tensorrtEnv(ep: ExecutionProvider): void {
  if (ep.name !== 'tensorrt') return;
  const set = (k: string, v: string) => {
    if (process.env[k] === undefined) process.env[k] = v; // an operator's explicit setting wins
  };
  set('ORT_TENSORRT_FP16_ENABLE', ep.fp16 ? '1' : '0');
  set('ORT_TENSORRT_INT8_ENABLE', ep.int8 ? '1' : '0');
  if (ep.engineCacheDir !== undefined) {
    set('ORT_TENSORRT_ENGINE_CACHE_ENABLE', '1');
    set('ORT_TENSORRT_CACHE_PATH', ep.engineCacheDir);
  }
  if (ep.workspaceMiB !== undefined) set('ORT_TENSORRT_MAX_WORKSPACE_SIZE', String(ep.workspaceMiB * 1024 * 1024));
}

function sessionOptions(profile: DeviceProfile, eps: readonly ExecutionProvider[]): ort.InferenceSession.SessionOptions {
  const spin = profile.threads.spinning ? '1' : '0';
  const o: ort.InferenceSession.SessionOptions = {
    executionProviders: eps.map(providerOption),
    graphOptimizationLevel: profile.graphOptimizationLevel,
    executionMode: 'sequential', // 'parallel' was 2x slower for ViTs (STACK.md §1)
    interOpNumThreads: profile.threads.interOp,
    logSeverityLevel: 3, // ORT's own warnings (unused initializers) are noise; failures reach us as errors
    // The binding flattens `extra` into session config entries: idle threads stop spinning.
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
  };
  if (profile.threads.intraOp > 0) o.intraOpNumThreads = profile.threads.intraOp;
  return o;
}

const errText = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 500);

export class ModelSession {
  private released = false;
  private busy = false;
  private scratch: Uint8Array | null = null;
  /** Time the warm-up runs took (set once by create()). */
  warmupMs = 0;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly artifact: Artifact,
    /** The execution provider in use. */
    readonly ep: string,
    /** Every provider tried, in order, with the failures. */
    readonly attempts: readonly EpAttempt[],
    /** Model batch dimension when fixed (e.g. a static TensorRT engine), else null. */
    private readonly fixedBatch: number | null,
    readonly maxBatch: number,
  ) {}

  get manifest(): Manifest {
    return this.artifact.manifest;
  }
  get ref(): ArtifactRef {
    return artifactRef(this.artifact);
  }
  get frameBytes(): number {
    const i = this.manifest.input;
    return i.height * i.width * i.channels;
  }

  static async create(artifact: Artifact, opts: SessionOptions): Promise<ModelSession> {
    const { profile } = opts;
    const m = artifact.manifest;
    if (m.shape !== 'fused') {
      throw new SessionError('SESSION_UNSUPPORTED', `${artifact.file}: a ${m.shape} artifact needs prompt inputs this runtime does not feed yet; compile the fused shape`);
    }
    const eps = profile.executionProviders;
    const attempts: EpAttempt[] = [];
    for (let i = 0; i < eps.length; i++) {
      const ep = eps[i]!;
      const t0 = performance.now();
      let session: ort.InferenceSession | null = null;
      try {
        tensorrtEnv(ep);
        session = await ort.InferenceSession.create(artifact.model, sessionOptions(profile, eps.slice(i)));
        const fixedBatch = checkIo(session, artifact);
        const maxBatch = fixedBatch ?? opts.maxBatch ?? profile.maxBatch;
        const s = new ModelSession(session, artifact, ep.name, attempts, fixedBatch, maxBatch);
        const w0 = performance.now();
        await s.warmUp(opts.warmupRuns ?? profile.warmupRuns);
        s.warmupMs = performance.now() - w0;
        attempts.push({ ep: ep.name, ok: true, ms: performance.now() - t0 });
        for (const a of attempts.filter((x) => !x.ok)) opts.log?.warn({ ep: a.ep, err: a.error }, 'session: execution provider unavailable, fell back');
        return s;
      } catch (e) {
        await session?.release().catch(() => {});
        if (e instanceof SessionError && e.code === 'SESSION_IO_MISMATCH') throw e; // the model is wrong, not the provider
        attempts.push({ ep: ep.name, ok: false, ms: performance.now() - t0, error: errText(e) });
      }
    }
    throw new SessionError(
      'EP_ALL_FAILED',
      `${artifact.file}: no execution provider could run the model: ${attempts.map((a) => `${a.ep}: ${a.error}`).join('; ')}`,
      attempts,
    );
  }

  /** Zero frames at batch 1 (and once at maxBatch, so shape-specialising EPs build both). */
  private async warmUp(runs: number): Promise<void> {
    if (runs === 0) return;
    const zero = new Uint8Array(this.frameBytes);
    for (let i = 0; i < runs; i++) await this.run([zero], 1);
    if (this.maxBatch > 1 && this.fixedBatch === null) await this.run(new Array<Uint8Array>(this.maxBatch).fill(zero), 1);
  }

  /**
   * Classifies frames (each H×W×3 uint8, the manifest's input size) in one batched run: frames are
   * copied once into one NHWC buffer with a memcpy each; no per-pixel JavaScript.
   */
  async run(frames: readonly Uint8Array[], k = 5): Promise<BatchResult> {
    if (this.released) throw new SessionError('SESSION_RELEASED', `${this.artifact.file}: run() after release()`);
    const fb = this.frameBytes;
    frames.forEach((f, i) => {
      if (f.length !== fb) {
        const { height: h, width: w } = this.manifest.input;
        throw new SessionError('BAD_FRAME', `frame ${i} has ${f.length} bytes; the model takes ${w}x${h}x3 = ${fb} (is the camera scaled to the model's input size?)`);
      }
    });
    const startedAt = Date.now();
    const t0 = performance.now();
    const predictions: Prediction[] = [];
    const chunk = this.fixedBatch ?? frames.length;
    for (let at = 0; at < frames.length; at += chunk) {
      const part = frames.slice(at, at + chunk);
      predictions.push(...(await this.runChunk(part, this.fixedBatch ?? part.length, k)));
    }
    return { predictions, inferMs: performance.now() - t0, startedAt };
  }

  private async runChunk(frames: readonly Uint8Array[], n: number, k: number): Promise<Prediction[]> {
    const { input, outputs, labels } = this.manifest;
    const fb = this.frameBytes;
    let data: Uint8Array;
    const reuse = !this.busy; // a concurrent caller gets its own buffer
    if (n === 1 && frames.length === 1) data = frames[0]!; // zero copy
    else {
      if (reuse && (this.scratch === null || this.scratch.length < n * fb)) this.scratch = new Uint8Array(Math.max(n, this.maxBatch) * fb);
      data = reuse ? this.scratch!.subarray(0, n * fb) : new Uint8Array(n * fb);
      frames.forEach((f, i) => data.set(f, i * fb));
      if (frames.length < n) data.fill(0, frames.length * fb); // padding for a fixed batch
    }
    const feeds = { [input.name]: new ort.Tensor('uint8', data, [n, input.height, input.width, 3]) };
    if (reuse) this.busy = true;
    let out: ort.InferenceSession.OnnxValueMapType;
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

/** Checks the graph against the manifest; returns the fixed batch size, or null when dynamic. */
function checkIo(s: ort.InferenceSession, a: Artifact): number | null {
  const m = a.manifest;
  const problems: string[] = [];
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
    else if (meta.isTensor) {
      const c = meta.shape.at(-1);
      if (typeof c === 'number' && c !== m.labels.length) problems.push(`output ${name} has ${c} classes but the manifest has ${m.labels.length} labels`);
    }
  }
  if (m.outputs.embedding !== undefined && !s.outputNames.includes(m.outputs.embedding)) problems.push(`output ${m.outputs.embedding} (outputs.embedding) is not a graph output`);
  if (problems.length > 0) throw new SessionError('SESSION_IO_MISMATCH', `${a.file}: the model does not match its manifest: ${problems.join('; ')}`);
  return fixedBatch;
}
