// Shared-backbone test models: a task (backbone + vpt-deep prompts + head, trained-looking values
// from a seed) exported fused and split into a backbone graph and prompt-pack tensors by the
// compiler, then packed into real .epk / .epp files. Only tests import compiler/.

import { encodeSafetensors, type StateDict } from '../../compiler/backbones/safetensors.ts';
import type { VitConfig } from '../../compiler/backbones/vit-variants.ts';
import { mulberry32 } from '../../devices/rng.ts';
import { splitBackbonePack, type BackbonePackSplit } from '../../compiler/export/backbone-pack.ts';
import { exportTask, type TaskExport } from '../../compiler/export/task.ts';
import { METHODS } from '../../compiler/methods/registry.ts';
import type { HostTensor } from '../../compiler/ops/host-tensor.ts';
import { packArtifact, packBackboneArtifact, packPromptPack, type BackboneManifest, type PackOptions, type Packed, type PromptPackDraft, type PromptPackManifest } from '../../runtime/artifact/index.ts';
import { fixtureVit } from './fixtures.ts';
import { randn } from './random-vit.ts';
import { VERSION } from '../../runtime/version.ts';
import { randomImageSampler } from './image-sample.ts';
import { draft } from './runtime-models.ts';

export interface BackbonePackTask {
  task: TaskExport;
  labels: string[];
  fused: Uint8Array;
  split: BackbonePackSplit;
}

/**
 * A vpt-deep task on `cfg`/`sd` with `classes` labels. Prompts are drawn N(0, 1) (larger than their
 * init, so a wrong fusion cannot hide) and the head N(0, 0.5) from `seed`: tasks of different
 * seeds disagree on most images.
 */
export async function backbonePackTask(seed: number, o: { classes?: number; prompts?: number; vit?: { cfg: VitConfig; sd: StateDict }; method?: string; options?: Record<string, unknown> } = {}): Promise<BackbonePackTask> {
  const C = o.classes ?? 10;
  const base = o.vit ?? fixtureVit();
  const cfg = { ...base.cfg, numClasses: C };
  const backbone: StateDict = new Map([...base.sd].filter(([k]) => !k.startsWith('head.')));
  const m = METHODS[o.method ?? 'vpt-deep']!;
  const options = m.resolveOptions((o.options ?? { prompts: o.prompts ?? 2 }) as never) as Record<string, unknown>;
  const params = new Map<string, HostTensor>(await m.init({ cfg, numClasses: C, backbone, rng: mulberry32(seed), sample: randomImageSampler(cfg, C, seed) }, options as never));
  for (const [k, t] of params) {
    const std = k.startsWith('head.') ? 0.5 : 1;
    params.set(k, { shape: t.shape, data: randn([...t.shape], std, seed * 100 + k.length) });
  }
  const task: TaskExport = { cfg, backbone, method: m as never, options, params };
  const split = await splitBackbonePack(exportTask(task, { form: 'shared' }), params);
  return { task, labels: Array.from({ length: C }, (_, i) => `t${seed}c${i}`), fused: exportTask(task), split };
}

const input = (size: number) => ({ name: 'image', height: size, width: size, channels: 3 as const, layout: 'NHWC' as const, dtype: 'uint8' as const, resize: 'stretch' as const });

export function backboneArtifact(t: BackbonePackTask, opts: PackOptions = {}, over: Partial<BackboneManifest> = {}): Packed<BackboneManifest> {
  return packBackboneArtifact(
    {
      manifest: {
        name: 'fixture-backbone',
        version: '1.0.0',
        input: input(t.task.cfg.imgSize),
        outputs: { logits: 'logits', probs: 'probs' },
        backbone: { arch: t.task.cfg.name, sha256: 'a'.repeat(64) },
        method: { name: t.task.method.name, options: t.task.options },
        pack: { inputs: t.split.inputs },
        precision: 'fp32',
        compiler: { version: VERSION, ortVersion: '1.30.0' },
        createdAt: '2026-01-02T03:04:05.000Z',
        target: null,
        ...over,
      },
      model: t.split.backbone,
    },
    opts,
  );
}

/** A pack of `t`'s tensors for the backbone whose model.onnx has sha256 `model`. */
export function promptPack(t: BackbonePackTask, model: string, over: Partial<PromptPackDraft> = {}, opts: PackOptions = {}, tensors: Map<string, HostTensor> = t.split.tensors): Packed<PromptPackManifest> {
  return packPromptPack(
    {
      manifest: {
        name: 'task-a',
        version: '1',
        labels: t.labels,
        thresholds: { minConfidence: 0 },
        method: { name: t.task.method.name, options: t.task.options },
        backbone: { arch: t.task.cfg.name, sha256: 'a'.repeat(64), model },
        prompts: { sha256: 'b'.repeat(64) },
        metrics: { fp32: { top1: 0.9, maxLogitDiff: 1e-5 } },
        compiler: { version: VERSION, ortVersion: '1.30.0' },
        createdAt: '2026-01-02T03:04:05.000Z',
        ...over,
      },
      tensors: encodeSafetensors(tensors),
    },
    opts,
  );
}

/** The same task, fused, as an .epk (the reference the shared shape must equal). */
export function fusedArtifact(t: BackbonePackTask, opts: PackOptions = {}) {
  return packArtifact({ manifest: draft({ name: 'task-fused', labels: t.labels, input: input(t.task.cfg.imgSize), method: { name: t.task.method.name, options: t.task.options }, target: null }), model: t.fused }, opts);
}
