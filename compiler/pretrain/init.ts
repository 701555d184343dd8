/**
 * Where pretraining starts: a timm-like random init (every weight matrix, kernel, pos_embed and
 * cls_token ~ N(0, 0.02²) truncated at ±2σ; biases 0; LayerNorm 1/0, as the PyTorch reference's
 * init_timm_like), or given timm weights; per-source heads fresh or from a previous run's heads
 * file. A given head whose class count differs from its source is an error, not a silent reset.
 */
import { CompilerError } from '../ops/errors.ts';
import { fmtShape, type HostTensor } from '../ops/host-tensor.ts';
import { readSafetensors, type StateDict } from '../backbones/safetensors.ts';
import { adaptVitStateDict, vitTensorShapes } from '../backbones/vit-weights.ts';
import type { VitConfig } from '../backbones/vit-variants.ts';
import { gaussian, type Rng } from '../../devices/rng.ts';
import { headKeys } from './objective.ts';

/** Backbone tensors (no head) drawn from `rng`. */
export function randomBackbone(cfg: VitConfig, rng: Rng): StateDict {
  const g = gaussian(rng);
  const sd: StateDict = new Map();
  for (const [key, shape] of vitTensorShapes({ ...cfg, numClasses: 0 })) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (/norm\d?\.weight$/.test(key)) data.fill(1);
    else if (!key.endsWith('.bias')) {
      for (let i = 0; i < n; i++) {
        let v = g();
        while (Math.abs(v) > 2) v = g();
        data[i] = 0.02 * v;
      }
    }
    sd.set(key, { shape, data });
  }
  return sd;
}

export interface GivenWeights {
  backbone: StateDict;
  /** Heads by source name, from the weights' own head (metadata `edgeprompt.head_source`) and the heads file. */
  heads: Map<string, { weight: HostTensor; bias: HostTensor; file: string }>;
  notes: string[];
}

/** A timm checkpoint for `cfg` (head set apart), plus a heads file of a previous pretraining run. */
export function givenWeights(cfg: VitConfig, weightsFile: string, headsFile?: string): GivenWeights {
  const { tensors, metadata } = readSafetensors(weightsFile);
  const loaded = adaptVitStateDict(tensors, { ...cfg, numClasses: 0 }, weightsFile, metadata);
  const heads: GivenWeights['heads'] = new Map();
  const own = metadata['edgeprompt.head_source'];
  const hw = tensors.get('head.weight');
  const hb = tensors.get('head.bias');
  if (own && hw && hb) heads.set(own, { weight: hw, bias: hb, file: weightsFile });
  if (headsFile) {
    const h = readSafetensors(headsFile).tensors;
    for (const [k, weight] of h) {
      const m = /^heads\.([a-z][a-z0-9_]*)\.weight$/.exec(k);
      if (!m) continue;
      const bias = h.get(`heads.${m[1]}.bias`);
      if (!bias) throw new CompilerError('MISSING_TENSOR', `${headsFile}: "${k}" has no "heads.${m[1]}.bias"`);
      heads.set(m[1]!, { weight, bias, file: headsFile });
    }
  }
  return { backbone: loaded.stateDict, heads, notes: loaded.notes.filter((n) => !n.includes('unexpected')) };
}

/** The given head for a source, checked against its classes; undefined when none was given. */
export function givenHead(given: GivenWeights | undefined, source: string, classes: readonly string[], width: number): Map<string, HostTensor> | undefined {
  const h = given?.heads.get(source);
  if (!h) return undefined;
  const C = classes.length;
  if (h.weight.shape[0] !== C || h.weight.shape[1] !== width || h.bias.shape[0] !== C) {
    throw new CompilerError(
      'WEIGHTS_MISMATCH',
      `${h.file}: the head of source "${source}" is ${fmtShape(h.weight.shape)} (${h.weight.shape[0]} classes), but source "${source}" has ${C} classes of width ${width}; match the source's classes or leave init.heads out to start a new head`,
    );
  }
  const k = headKeys(source);
  return new Map([
    [k.w, { shape: [...h.weight.shape], data: Float32Array.from(h.weight.data) }],
    [k.b, { shape: [...h.bias.shape], data: Float32Array.from(h.bias.data) }],
  ]);
}
