// A shared-backbone session: ONE onnxruntime session whose graph takes a prompt pack's tensors as
// inputs beside the image, so it serves any number of packs (tasks) without reopening. Binding a
// pack checks that it fits (checkPackFits: backbone digest, names, shapes, class count) and turns
// its tensors into ORT tensors once (a PackTask, below); every run feeds the bound task's tensors
// with the frames.

import * as ort from 'onnxruntime-node';
import type { BackboneArtifact } from '../artifact/read.ts';
import type { PromptPack } from '../artifact/prompt-pack.ts';
import { ArtifactError } from '../artifact/errors.ts';
import type { Manifest } from '../artifact/manifest.ts';
import { checkPackFits, taskManifest } from '../artifact/backbone-pack.ts';
import type { ArtifactRef } from '../schema/payloads.ts';
import type { EngineSession } from './engine.ts';
import { SessionError, type EpAttempt } from './errors.ts';
import { openWithFallback, type SessionOptions } from './providers.ts';
import { checkIo, OrtSession } from './session.ts';
import type { BatchResult, ModelTask } from './task.ts';

export class BackboneSession extends OrtSession {
  declare readonly artifact: BackboneArtifact;
  /** The graph's class count when fixed (a head folded into the backbone), else null: each pack brings its own. */
  private classes: number | null = null;

  /** Opens the backbone and warms it up with `pack` (which must fit), so the first real frame is fast. */
  static async create(artifact: BackboneArtifact, pack: PromptPack, opts: SessionOptions): Promise<BackboneSession> {
    checkPackFits(pack, artifact); // before any session work: a pack that does not fit is the model's fault
    return openWithFallback(artifact, opts, async (session, ep, attempts, engine) => {
      const { fixedBatch, classes } = checkBackboneIo(session, artifact);
      const s = new BackboneSession(session, artifact, ep, attempts, fixedBatch, fixedBatch ?? opts.maxBatch ?? opts.profile.maxBatch, engine);
      s.classes = classes;
      const task = s.bind(pack);
      const w0 = performance.now();
      await s.warmUp(opts.warmupRuns ?? opts.profile.warmupRuns, task.manifest.labels, task.feeds);
      s.warmupMs = performance.now() - w0;
      return s;
    });
  }

  /** A task for `pack` on this backbone; PACK_BACKBONE_MISMATCH / PACK_SHAPE_MISMATCH when it does not fit. */
  bind(pack: PromptPack): PackTask {
    checkPackFits(pack, this.artifact);
    if (this.classes !== null && this.classes !== pack.manifest.labels.length) {
      throw new ArtifactError('PACK_SHAPE_MISMATCH', pack.file, `has ${pack.manifest.labels.length} labels but ${this.artifact.file} outputs ${this.classes} classes; rebuild the pack for this backbone`, { field: 'labels' });
    }
    const feeds: Record<string, ort.Tensor> = {};
    for (const spec of this.artifact.manifest.pack.inputs) {
      const t = pack.tensors.get(spec.name)!;
      feeds[spec.name] = new ort.Tensor('float32', t.data, t.shape);
    }
    return new PackTask(this, pack, feeds);
  }

  /** Classifies frames with a task bound to this session. */
  async run(frames: readonly Uint8Array[], k: number, task: PackTask): Promise<BatchResult> {
    if (task.session !== this) throw new SessionError('NO_PACK', `${task.pack.file}: bound to another session (of ${task.session.artifact.file}; the backbone was reloaded?): bind it to this one first`);
    return this.runFrames(frames, k, task.manifest.labels, task.feeds);
  }
}

/** checkIo, plus: the graph takes exactly the image and the manifest's pack inputs, float32 of their rank. */
function checkBackboneIo(s: EngineSession, a: BackboneArtifact): { fixedBatch: number | null; classes: number | null } {
  const problems: string[] = [];
  const declared = new Map(a.manifest.pack.inputs.map((p) => [p.name, p]));
  for (const meta of s.inputMetadata) {
    if (meta.name === a.manifest.input.name) continue;
    const spec = declared.get(meta.name);
    if (!spec) problems.push(`graph input ${meta.name} is not a pack input of the manifest`);
    else if (meta.isTensor && (meta.type !== 'float32' || meta.shape.length !== spec.shape.length)) {
      problems.push(`graph input ${meta.name} is ${meta.type} [${meta.shape.join(', ')}], the manifest says float32 [${spec.shape.join(', ')}]`);
    }
  }
  for (const name of declared.keys()) if (!s.inputNames.includes(name)) problems.push(`pack input ${name} is not a graph input`);
  // The class count comes from each pack (checked when it is bound), so none is imposed here.
  const fixedBatch = checkIo(s, a, null, problems);
  const out = s.outputMetadata.find((x) => x.name === a.manifest.outputs.logits);
  const c = out?.isTensor ? out.shape.at(-1) : undefined;
  return { fixedBatch, classes: typeof c === 'number' && c > 0 ? c : null };
}

/** A prompt pack bound to a backbone session: checked to fit, its tensors made ORT feeds once. */
export class PackTask implements ModelTask {
  readonly manifest: Manifest;
  readonly prompt: ArtifactRef;
  /** The pack's tensors as graph inputs, fed with every batch (never copied per frame). */
  readonly feeds: Record<string, ort.Tensor>;

  constructor(
    readonly session: BackboneSession,
    readonly pack: PromptPack,
    feeds: Record<string, ort.Tensor>,
  ) {
    this.manifest = taskManifest(pack.manifest, session.artifact.manifest);
    this.prompt = { name: pack.manifest.name, version: pack.manifest.version, sha256: pack.sha256 };
    this.feeds = feeds;
  }

  get ref(): ArtifactRef {
    return this.session.ref;
  }
  get ep(): string {
    return this.session.ep;
  }
  get attempts(): readonly EpAttempt[] {
    return this.session.attempts;
  }
  get warmupMs(): number {
    return this.session.warmupMs;
  }
  get maxBatch(): number {
    return this.session.maxBatch;
  }

  run(frames: readonly Uint8Array[], k = 5): Promise<BatchResult> {
    return this.session.run(frames, k, this);
  }
}
