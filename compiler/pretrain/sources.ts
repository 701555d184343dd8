/**
 * Pretraining sources, loaded at the backbone's input size: generated parts lines (every design ×
 * finish pair of a `parts` source is one line, rendered once and cached), Fashion-MNIST classes,
 * or an image folder. Each keeps its own label space. The held-out (benchmark) line is checked
 * disjoint from every parts line here, so no config can pretrain on the line it reports.
 */
import { resolve } from 'node:path';
import { CompilerError } from '../ops/errors.ts';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { loadImageFolder } from '../data/image-folder.ts';
import { PART_CLASSES } from '../data/parts-scene.ts';
import { FINISHES, MIXED_POOL, RANDOM_FINISH_EXCLUDED_HUES, hueOf, type NamedFinish } from '../data/parts-finishes.ts';
import { hashString, mixSeed } from '../../devices/rng.ts';
import { DataError } from '../data/errors.ts';
import type { LabeledSet } from '../data/types.ts';
import { cachedPartsSet } from './parts-cache.ts';
import type { PretrainConfig, SourceConfig } from './config.ts';
import type { ObjectiveName } from './objective-types.ts';
import { loadCaptionSets, type CaptionSets, type CaptionTemplates } from './captions.ts';

export interface LoadedSource {
  name: string;
  kind: SourceConfig['kind'];
  weight: number;
  objective: ObjectiveName;
  /** Weight of the patch-level term (parts sources; 0 elsewhere). */
  patches: number;
  classes: string[];
  train: LabeledSet;
  val: LabeledSet;
  /** What the card says about where the images came from. */
  describe: Record<string, unknown>;
  /** Captions sources: what each label (caption key) says, the templates, the withheld triples' images. */
  captions?: CaptionSets & { templates: CaptionTemplates };
}

/** Keeps validation images apart from training images of the same line. */
const VAL_STREAM = 0x76616c; // 'val'

/** The design every `random` design resembles (rectangles with hole grids, discs with bolt circles, hexagons…): all but bracket. */
const RANDOM_DESIGN_RESEMBLES = ['plate', 'flange', 'hex', 'strip', 'triangle'];

/** One seed per line, so two lines never share belts, lighting or defect placement. */
export const lineSeed = (seed: number, part: string, material: string): number => mixSeed(seed, hashString(part), hashString(material));

/** Throws when a parts source could draw the held-out (benchmark) or the validation line's design or finish. */
export function checkHeldOut(cfg: PretrainConfig, file: string): void {
  const { heldOut, validation } = cfg;
  if (heldOut && validation && heldOut.part === validation.part && heldOut.material === validation.material) {
    throw new CompilerError('CONFIG_INVALID', `${file}: validation: ${validation.part} × ${validation.material} is the benchmark line (heldOut); choose the published epoch on another line`);
  }
  if (heldOut) checkLine(cfg, file, heldOut, 'heldOut');
  if (validation) checkLine(cfg, file, validation, 'validation');
}

function checkLine(cfg: PretrainConfig, file: string, h: NonNullable<PretrainConfig['heldOut']>, field: string): void {
  if (h.material === 'mixed' || h.material === 'random') throw new CompilerError('CONFIG_INVALID', `${file}: ${field}.material: "${h.material}" is not one finish; hold out a named finish`);
  cfg.sources.forEach((src, i) => {
    const s = src.kind === 'parts' ? src : src.kind === 'captions' ? src.parts : undefined;
    if (!s) return;
    const where = `${file}: sources.${i} (${src.name})`;
    if (s.designs.includes(h.part)) throw new CompilerError('CONFIG_INVALID', `${where}: designs include "${h.part}", the ${field} line's design; remove it so that line stays unseen`);
    if (s.designs.includes('random') && RANDOM_DESIGN_RESEMBLES.includes(h.part)) {
      throw new CompilerError('CONFIG_INVALID', `${where}: the "random" design draws shapes like "${h.part}" (the ${field} line's design); hold out "bracket" or drop "random"`);
    }
    if (s.finishes.includes(h.material)) throw new CompilerError('CONFIG_INVALID', `${where}: finishes include "${h.material}", the ${field} line's finish; remove it`);
    if (s.finishes.includes('mixed') && MIXED_POOL.includes(h.material as NamedFinish)) {
      throw new CompilerError('CONFIG_INVALID', `${where}: finish "mixed" draws "${h.material}" (the ${field} line's finish); list the other finishes instead`);
    }
    const hue = hueOf(FINISHES[h.material as NamedFinish].light);
    const [lo, hi] = RANDOM_FINISH_EXCLUDED_HUES;
    if (s.finishes.includes('random') && !(hue >= lo && hue <= hi)) {
      throw new CompilerError('CONFIG_INVALID', `${where}: finish "random" draws hues near "${h.material}" (hue ${hue.toFixed(0)}°; random avoids only ${lo}–${hi}°); drop "random" or hold out a blue finish`);
    }
  });
}

export async function loadSource(s: SourceConfig, imgSize: number, baseDir: string, cacheDir: string, log: (line: string) => void): Promise<LoadedSource> {
  const base = { name: s.name, kind: s.kind, weight: s.weight, objective: s.objective, patches: s.kind === 'parts' ? s.patches : 0 };
  let train: LabeledSet;
  let val: LabeledSet;
  let describe: Record<string, unknown>;
  let captions: LoadedSource['captions'];
  if (s.kind === 'parts') {
    const classes = [...(s.classes ?? PART_CLASSES)].sort();
    if (s.patches > 0 && !classes.includes('ok')) throw new CompilerError('CONFIG_INVALID', `source ${s.name}: a patch-level term labels defect-free patches "ok", so its classes must include "ok"`);
    const lines = s.designs.flatMap((part) => s.finishes.map((material) => ({ part, material })));
    const t0 = performance.now();
    let hits = 0;
    const trains: LabeledSet[] = [];
    const vals: LabeledSet[] = [];
    for (const l of lines) {
      const o = { ...l, pose: s.pose, lighting: s.lighting, size: imgSize, classes, cells: s.patches > 0 };
      const seed = lineSeed(s.seed, l.part, l.material);
      const tr = await cachedPartsSet(cacheDir, { ...o, perClass: s.perClass, seed });
      const va = await cachedPartsSet(cacheDir, { ...o, perClass: s.valPerClass, seed: mixSeed(seed, VAL_STREAM) });
      hits += Number(tr.hit) + Number(va.hit);
      trains.push(tr.set);
      vals.push(va.set);
    }
    log(`source ${s.name}: ${lines.length} parts line(s) × ${classes.length} classes × ${s.perClass} (+${s.valPerClass} val) at ${imgSize} px; ${hits}/${2 * lines.length} from the cache, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    train = concat(`${s.name}:train`, classes, imgSize, trains);
    val = concat(`${s.name}:val`, classes, imgSize, vals);
    describe = { lines: lines.map((l) => `${l.part} × ${l.material}`), pose: s.pose, lighting: s.lighting, classes, patches: s.patches, perClassPerLine: s.perClass, valPerClassPerLine: s.valPerClass, seed: s.seed };
  } else if (s.kind === 'fashion-mnist') {
    const common = { dir: resolve(baseDir, s.root), size: imgSize, classes: s.classes };
    train = loadFashionMnist({ ...common, split: 'train', ...(s.limitPerClass ? { limit: s.limitPerClass } : {}) });
    val = loadFashionMnist({ ...common, split: 'test', limit: s.valLimitPerClass });
    describe = { dir: common.dir, classes: s.classes, train: 'train split', val: `t10k, first ${s.valLimitPerClass} per class` };
  } else if (s.kind === 'captions') {
    const parts = s.parts && { ...s.parts, classes: [...(s.parts.classes ?? PART_CLASSES)] };
    const fm = s.fashionMnist && { ...s.fashionMnist, root: resolve(baseDir, s.fashionMnist.root) };
    const sets = await loadCaptionSets({ name: s.name, withhold: s.withhold, ...(parts ? { parts } : {}), ...(fm ? { fashionMnist: fm } : {}) }, imgSize, cacheDir, log);
    ({ train, val } = sets);
    captions = { ...sets, templates: s.templates };
    describe = { parts: s.parts ?? null, fashionMnist: s.fashionMnist ?? null, captionKeys: sets.keys.length, withhold: s.withhold, withheldValImages: sets.withheld.set.samples.length, templates: s.templates };
  } else {
    const root = resolve(baseDir, s.root);
    ({ train, val } = await loadImageFolder(root, { size: imgSize, split: { val: s.valFraction, seed: 0 } }));
    describe = { root, valFraction: s.valFraction };
  }
  if (train.samples.length === 0 || val.samples.length === 0) {
    throw new DataError('TOO_FEW_SAMPLES', `source ${s.name}: ${train.samples.length} training and ${val.samples.length} validation images; a source needs both (check its classes, limits or folder)`);
  }
  return { ...base, ...(captions ? { captions } : {}), classes: train.classes, train, val, describe: { kind: s.kind, weight: s.weight, objective: s.objective, trainImages: train.samples.length, valImages: val.samples.length, ...describe } };
}

function concat(name: string, classes: string[], size: number, sets: LabeledSet[]): LabeledSet {
  return { name, classes, size, samples: sets.flatMap((x) => x.samples) };
}
