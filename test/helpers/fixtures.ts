/** The PyTorch reference fixtures (tools/reference/make_fixtures.py) and tfjs set-up for tests. */
import { fileURLToPath } from 'node:url';
import { readSafetensors, type StateDict } from '../../compiler/backbones/safetensors.ts';
import { vitConfig } from '../../compiler/backbones/vit-variants.ts';
import { loadVitWeights } from '../../compiler/backbones/vit-weights.ts';
import type { HostTensor } from '../../compiler/ops/host-tensor.ts';

export const fixturePath = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
export const repoPath = (rel: string) => fileURLToPath(new URL(`../../${rel}`, import.meta.url));

export function fixtureVit(overrides = {}) {
  const cfg = vitConfig('vit_fixture_patch8_32', overrides);
  const { stateDict } = loadVitWeights(fixturePath('vit_fixture.safetensors'), cfg);
  return { cfg, sd: stateDict };
}

export function fixtureIO(): Map<string, HostTensor> {
  return readSafetensors(fixturePath('vit_fixture_io.safetensors')).tensors;
}

export function get(m: StateDict, k: string): HostTensor {
  const t = m.get(k);
  if (!t) throw new Error(`fixture lacks ${k}`);
  return t;
}

/** max |a − b| / max |b|: scale-free gradient comparison. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}
