// A shared-backbone session: ONE onnxruntime session whose graph takes a prompt pack's tensors as
// inputs beside the image, so it serves any number of packs (tasks) without reopening. Binding a
// pack checks that it fits (checkPackFits: backbone digest, names, shapes, class count) and turns
// its tensors into ORT tensors once; every run feeds the bound task's tensors with the frames.

import * as ort from 'onnxruntime-node';
import type { BackboneArtifact } from '../artifact/read.ts';
import type { PromptPack } from '../artifact/prompt-pack.ts';
import { ArtifactError } from '../artifact/errors.ts';
import { checkPackFits } from '../artifact/shared.ts';
import { engineFor, type EngineSession } from './engine.ts';
import { SessionError } from './errors.ts';
import { openWithFallback, type SessionOptions } from './providers.ts';
import { checkIo, OrtSession, type BatchResult } from './session.ts';
import { PackTask } from './task.ts';

export class BackboneSession extends OrtSession {
  declare readonly artifact: BackboneArtifact;
  /** The graph's class count when fixed (a head folded into the backbone), else null: each pack brings its own. */
  private classes: number | null = null;

  /** Opens the backbone and warms it up with `pack` (which must fit), so the first real frame is fast. */
  static async create(artifact: BackboneArtifact, pack: PromptPack, opts: SessionOptions): Promise<BackboneSession> {
    checkPackFits(pack, artifact); // before any session work: a pack that does not fit is the model's fault
    return openWithFallback(artifact, opts, async (session, ep, attempts) => {
      const { fixedBatch, classes } = checkBackboneIo(session, artifact);
      const s = new BackboneSession(session, artifact, ep, attempts, fixedBatch, fixedBatch ?? opts.maxBatch ?? opts.profile.maxBatch, engineFor(opts.profile));
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
