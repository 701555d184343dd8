/**
 * Image–caption pairs for contrastive (CLIP) pretraining, built from what the generator and the
 * data set know about each image: a generated part's design, finish and defect, a Fashion-MNIST
 * item's class name. One `captions` source holds both. Its label space is the caption KEYS — one
 * per (design, finish, defect) line class and one per garment — so the mixture, the loop and the
 * engines carry captions as ordinary labels; the contrastive objective turns a label into a
 * sentence through one of the source's templates.
 *
 * Some (design, finish, defect) triples can be `withheld`: their images are never drawn and their
 * caption never written, while every word in them is seen in other combinations, so zero-shot on
 * them measures composition, not memory (the card reports it).
 */
import { hashString, mixSeed } from '../../devices/rng.ts';
import { loadFashionMnist, FASHION_MNIST_CLASSES } from '../data/fashion-mnist.ts';
import type { PartClass } from '../data/parts-scene.ts';
import type { LabeledSet, Sample } from '../data/types.ts';
import { CompilerError } from '../ops/errors.ts';
import { cachedPartsSet } from './parts-cache.ts';

/** The words a caption uses for a design, a finish, a defect, a garment. */
export const DESIGN_WORDS: Record<string, string> = { plate: 'plate', flange: 'flange', bracket: 'bracket', hex: 'hex nut', strip: 'strip', triangle: 'triangle' };
export const FINISH_WORDS: Record<string, string> = {
  steel: 'steel',
  aluminium: 'aluminium',
  brass: 'brass',
  'blue-anodised': 'blue anodised',
  'red-anodised': 'red anodised',
  copper: 'copper',
  'black-oxide': 'black oxide',
  'zinc-yellow': 'yellow zinc',
  'green-anodised': 'green anodised',
};
/** As a noun phrase after "with" ("a steel plate with a scratch"). */
export const DEFECT_WORDS: Record<PartClass, string> = { ok: 'no defect', scratch: 'a scratch', dent: 'a dent', missing_hole: 'a missing hole', stain: 'a stain' };
export const GARMENT_WORDS: readonly string[] = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot'];

/** What a caption key stands for. */
export type CaptionKey = { kind: 'part'; design: string; finish: string; defect: PartClass } | { kind: 'garment'; garment: number };

export const keyName = (k: CaptionKey): string => (k.kind === 'part' ? `${k.design}/${k.finish}/${k.defect}` : `fmnist/${FASHION_MNIST_CLASSES[k.garment]}`);

export interface CaptionTemplates {
  /** With {design}, {finish} and {defect}. */
  parts: string[];
  /** With {}. */
  garments: string[];
}

export const DEFAULT_TEMPLATES: CaptionTemplates = {
  parts: ['a photo of a {finish} {design} with {defect}.', 'a {finish} {design} part with {defect}.', '{defect} on a {finish} {design}.', 'a close-up photo of a {finish} {design} part on the line, with {defect}.'],
  garments: ['a photo of a {}.', 'a {} on a black background.', 'a small photo of a {}.'],
};

/** The sentence for key k through template t (index into the key's kind's list). */
export function captionText(k: CaptionKey, templates: CaptionTemplates, t: number): string {
  if (k.kind === 'garment') {
    const list = templates.garments;
    return list[t % list.length]!.replace('{}', GARMENT_WORDS[k.garment]!);
  }
  const list = templates.parts;
  return list[t % list.length]!.replace('{design}', DESIGN_WORDS[k.design] ?? k.design).replace('{finish}', FINISH_WORDS[k.finish] ?? k.finish).replace('{defect}', DEFECT_WORDS[k.defect]);
}

/** Every caption the given keys × templates can produce (the BPE training corpus, the tokenizer's check). */
export function allCaptions(keys: readonly CaptionKey[], templates: CaptionTemplates): string[] {
  const n = (k: CaptionKey) => (k.kind === 'part' ? templates.parts.length : templates.garments.length);
  return keys.flatMap((k) => Array.from({ length: n(k) }, (_, t) => captionText(k, templates, t)));
}

export interface CaptionSourceSpec {
  name: string;
  parts?: { designs: string[]; finishes: string[]; classes: PartClass[]; perClass: number; valPerClass: number; seed: number; pose: 'fixtured' | 'free'; lighting: 'line' | 'varied' };
  fashionMnist?: { root: string; classes: number[]; limitPerClass?: number; valLimitPerClass: number };
  /** "design/finish/defect" triples never captioned. */
  withhold: string[];
}

export interface CaptionSets {
  keys: CaptionKey[];
  train: LabeledSet;
  val: LabeledSet;
  /** Validation images of the withheld triples, labelled by their own keys (`withheldKeys`). */
  withheld: { keys: CaptionKey[]; set: LabeledSet };
}

const VAL_STREAM = 0x76616c; // as sources.ts: validation images of a line come from another seed
/** As sources.ts's lineSeed: one seed per line, so a captions source and a parts source render the same line alike. */
const lineSeedOf = (seed: number, part: string, material: string) => mixSeed(seed, hashString(part), hashString(material));

/** Loads the source's images at `size` px and labels each by its caption key. */
export async function loadCaptionSets(s: CaptionSourceSpec, size: number, cacheDir: string, log: (l: string) => void): Promise<CaptionSets> {
  const keys: CaptionKey[] = [];
  const held: CaptionKey[] = [];
  const train: Sample[] = [];
  const val: Sample[] = [];
  const heldVal: Sample[] = [];
  const withhold = new Set(s.withhold);
  if (s.parts) {
    const p = s.parts;
    for (const w of withhold) {
      const [d, f, c] = w.split('/');
      if (!d || !f || !c || !p.designs.includes(d) || !p.finishes.includes(f) || !p.classes.includes(c as PartClass)) {
        throw new CompilerError('CONFIG_INVALID', `source ${s.name}: withhold "${w}" is not design/finish/defect of this source (designs ${p.designs.join(', ')}; finishes ${p.finishes.join(', ')}; defects ${p.classes.join(', ')})`);
      }
    }
    const classes = [...p.classes].sort() as PartClass[];
    const t0 = performance.now();
    for (const design of p.designs) {
      for (const finish of p.finishes) {
        const o = { part: design as never, material: finish as never, pose: p.pose, lighting: p.lighting, size, classes };
        const seed = lineSeedOf(p.seed, design, finish);
        const tr = (await cachedPartsSet(cacheDir, { ...o, perClass: p.perClass, seed })).set;
        const va = (await cachedPartsSet(cacheDir, { ...o, perClass: p.valPerClass, seed: mixSeed(seed, VAL_STREAM) })).set;
        classes.forEach((defect, c) => {
          const k: CaptionKey = { kind: 'part', design, finish, defect };
          if (withhold.has(keyName(k))) {
            held.push(k);
            for (const x of va.samples) if (x.label === c) heldVal.push({ ...x, label: held.length - 1 });
            return;
          }
          keys.push(k);
          for (const x of tr.samples) if (x.label === c) train.push({ ...x, label: keys.length - 1 });
          for (const x of va.samples) if (x.label === c) val.push({ ...x, label: keys.length - 1 });
        });
      }
    }
    log(`source ${s.name}: ${p.designs.length * p.finishes.length} parts lines × ${classes.length} defects × ${p.perClass} (+${p.valPerClass} val) at ${size} px, ${withhold.size} triple(s) withheld, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  if (s.fashionMnist) {
    const f = s.fashionMnist;
    const common = { dir: f.root, size, classes: f.classes };
    const tr = loadFashionMnist({ ...common, split: 'train', ...(f.limitPerClass ? { limit: f.limitPerClass } : {}) });
    const va = loadFashionMnist({ ...common, split: 'test', limit: f.valLimitPerClass });
    const base = keys.length;
    f.classes.forEach((garment) => keys.push({ kind: 'garment', garment }));
    for (const x of tr.samples) train.push({ ...x, label: base + x.label });
    for (const x of va.samples) val.push({ ...x, label: base + x.label });
  }
  const names = keys.map(keyName);
  return {
    keys,
    train: { name: `${s.name}:train`, classes: names, size, samples: train },
    val: { name: `${s.name}:val`, classes: names, size, samples: val },
    withheld: { keys: held, set: { name: `${s.name}:withheld`, classes: held.map(keyName), size, samples: heldVal } },
  };
}
