// Real test models and artifacts for the runtime tests: the fixture ViT (32x32, 10 classes)
// exported by the compiler with the device input contract (uint8 NHWC), packed into .epk files.
// Only tests import compiler/; runtime/ never does.

import * as ort from 'onnxruntime-node';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportVitBackbone } from '../../compiler/export/backbone.ts';
import { fixtureVit } from './fixtures.ts';
import { packArtifact, type ManifestDraft, type PackOptions, type Packed } from '../../runtime/artifact/index.ts';
import { DeviceProfile, type DeviceProfileInput } from '../../runtime/config/profile.ts';
import { VERSION } from '../../runtime/version.ts';

export const SIZE = 32;
export const LABELS = Array.from({ length: 10 }, (_, i) => `class${i}`);
export type Rgb = readonly [number, number, number];

let cached: Uint8Array | null = null;
/** The fixture ViT as ONNX: input `image` uint8 [N,32,32,3], outputs `logits`, `probs` [N,10]. */
export function fixtureModel(): Uint8Array {
  if (cached === null) {
    const { cfg, sd } = fixtureVit();
    cached = exportVitBackbone(cfg, sd, { input: 'uint8-nhwc' });
  }
  return cached;
}

export function draft(over: Partial<ManifestDraft> = {}): ManifestDraft {
  return {
    name: 'fixture-vit',
    version: '1.0.0',
    labels: LABELS,
    input: { name: 'image', height: SIZE, width: SIZE, channels: 3, layout: 'NHWC', dtype: 'uint8', resize: 'stretch' },
    outputs: { logits: 'logits', probs: 'probs' },
    backbone: { arch: 'vit_fixture_patch8_32', sha256: 'a'.repeat(64) },
    method: { name: 'linear', options: {} },
    prompts: { sha256: 'b'.repeat(64) },
    precision: 'fp32',
    metrics: { fp32: { top1: 0.9, maxLogitDiff: 1e-5 } },
    thresholds: { minConfidence: 0.1 },
    compiler: { version: VERSION, ortVersion: '1.30.0' },
    createdAt: '2026-01-02T03:04:05.000Z',
    target: 'x86-cpu',
    ...over,
  };
}

export function makeArtifact(over: Partial<ManifestDraft> = {}, opts: PackOptions = {}, model: Uint8Array = fixtureModel()): Packed {
  return packArtifact({ manifest: draft(over), model }, opts);
}

export function cpuProfile(over: Partial<DeviceProfileInput> = {}): DeviceProfile {
  return DeviceProfile.parse({ schemaVersion: 1, name: 'test-cpu', arch: 'x64', precisions: ['fp32'], executionProviders: [{ name: 'cpu' }], threads: { intraOp: 1 }, warmupRuns: 1, maxBatch: 4, ...over });
}

export function solid(rgb: Rgb, size = SIZE): Uint8Array {
  const out = new Uint8Array(size * size * 3);
  for (let i = 0; i < out.length; i += 3) out.set(rgb, i);
  return out;
}

/** What the model says for a solid colour, straight from onnxruntime (the reference for pipeline tests). */
export async function referenceLabel(rgb: Rgb): Promise<{ label: string; score: number }> {
  const s = await ort.InferenceSession.create(fixtureModel());
  try {
    const r = await s.run({ image: new ort.Tensor('uint8', solid(rgb), [1, SIZE, SIZE, 3]) });
    const p = r.probs!.data as Float32Array;
    let best = 0;
    for (let i = 1; i < p.length; i++) if (p[i]! > p[best]!) best = i;
    return { label: LABELS[best]!, score: p[best]! };
  } finally {
    await s.release();
  }
}

export async function tempDir(prefix = 'ep-rt-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function writeArtifact(dir: string, name: string, packed: Packed | Uint8Array): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, packed instanceof Uint8Array ? packed : packed.bytes);
  return p;
}
