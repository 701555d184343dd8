/** The CLIP parity fixtures (tools/reference/clip_ref.py): tiny random weights under both name schemes, the hand-made vocabulary. */
import { loadClipWeights } from '../../compiler/backbones/clip-weights.ts';
import { makeClipTask } from '../../compiler/backbones/clip-task.ts';
import { readSafetensors } from '../../compiler/backbones/safetensors.ts';
import { ClipTokenizer } from '../../compiler/text/tokenizer.ts';
import type { HostTensor } from '../../compiler/ops/host-tensor.ts';
import { fixturePath } from './fixtures.ts';

export type Act = 'gelu' | 'quick_gelu';
const SOURCE: Record<Act, string> = { quick_gelu: 'openai', gelu: 'laion' };

export function fixtureClip(scheme: 'openai' | 'hf' = 'openai', act: Act = 'quick_gelu') {
  return loadClipWeights(fixturePath(`clip_fixture_${scheme}.safetensors`), 'clip_fixture', SOURCE[act]);
}

export function fixtureTokenizer(): ClipTokenizer {
  return ClipTokenizer.fromFile(fixturePath('clip_fixture_tokenizer.json'));
}

export function clipIO(): Map<string, HostTensor> {
  return readSafetensors(fixturePath('clip_fixture_io.safetensors')).tensors;
}

/** Rows of an [n, L] float id tensor as Int32Arrays. */
export function idRows(t: HostTensor): Int32Array[] {
  const [n, L] = t.shape as [number, number];
  return Array.from({ length: n }, (_, r) => Int32Array.from(t.data.subarray(r * L, (r + 1) * L)));
}

/** A task on the fixture CLIP: four classes the hand-made vocabulary spells, two templates. */
export function fixtureClipTask(opts: { scheme?: 'openai' | 'hf'; act?: Act; classes?: string[]; templates?: string[] } = {}) {
  const m = fixtureClip(opts.scheme ?? 'openai', opts.act ?? 'quick_gelu');
  const task = makeClipTask({ cfg: m.cfg, stateDict: m.stateDict, tokenizer: fixtureTokenizer(), classes: opts.classes ?? ['cat', 'dog', 'cat_dog', 'a dog!'], templates: opts.templates ?? ['a {}.', '{} & cat'] });
  return { ...m, task };
}
