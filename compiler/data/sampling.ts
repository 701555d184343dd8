/**
 * Picking samples out of a LabeledSet: k-shot draws, stratified splits, class subsets, and the
 * check that a set's classes are the ones a checkpoint's head was trained on. All seeded; all keep
 * the set's sample order (a subset lists its samples in the order the set does).
 */
import { CompilerError } from '../ops/errors.ts';
import { DataError, checkInt } from './errors.ts';
import { hashString, mixSeed, mulberry32, permutation } from '../../devices/rng.ts';
import type { LabeledSet, Sample, Split } from './types.ts';

/** Sample indices of each class, in set order: [class][i]. */
export function indicesByClass(set: LabeledSet): number[][] {
  const by: number[][] = set.classes.map(() => []);
  set.samples.forEach((s, i) => {
    const list = by[s.label];
    if (!list) throw new CompilerError('DATA_INVALID', `${set.name}: sample ${s.source} has label ${s.label}, but the set has ${set.classes.length} classes`);
    list.push(i);
  });
  return by;
}

/** Samples per class, keyed by class name. */
export function classCounts(set: LabeledSet): Record<string, number> {
  const by = indicesByClass(set);
  return Object.fromEntries(set.classes.map((c, i) => [c, by[i]!.length]));
}

/**
 * k samples of every class, without replacement. Each class draws from its own stream keyed by
 * (seed, class name), so a larger k extends a smaller one and adding a class changes no other
 * class's draw.
 */
export function kShot(set: LabeledSet, k: number, seed: number): LabeledSet {
  checkInt(k, 'k', 1);
  checkInt(seed, 'seed');
  const keep: number[] = [];
  indicesByClass(set).forEach((idx, c) => {
    const cls = set.classes[c]!;
    if (idx.length < k) throw new DataError('TOO_FEW_SAMPLES', `${set.name}: class "${cls}" has ${idx.length} samples, fewer than k=${k}; lower k or add images to "${cls}"`);
    const order = permutation(idx.length, mulberry32(mixSeed(seed, hashString(cls), 1)));
    for (let i = 0; i < k; i++) keep.push(idx[order[i]!]!);
  });
  return pick(set, keep, `${set.name}:${k}-shot:${seed}`);
}

/**
 * Stratified split: round(n·valFraction) of each class to val, at least 1 and leaving at least 1
 * in train, so every class appears on both sides.
 */
export function splitFraction(set: LabeledSet, valFraction: number, seed: number): Split {
  if (!(valFraction > 0 && valFraction < 1)) throw new CompilerError('CONFIG_INVALID', `${set.name}: val fraction must be in (0, 1), got ${valFraction}`);
  checkInt(seed, 'seed');
  const train: number[] = [];
  const val: number[] = [];
  indicesByClass(set).forEach((idx, c) => {
    const cls = set.classes[c]!;
    if (idx.length < 2) throw new DataError('TOO_FEW_SAMPLES', `${set.name}: class "${cls}" has ${idx.length} sample(s); a train/val split needs at least 2 per class`);
    const nVal = Math.min(idx.length - 1, Math.max(1, Math.round(idx.length * valFraction)));
    const order = permutation(idx.length, mulberry32(mixSeed(seed, hashString(cls), 2)));
    order.forEach((o, i) => (i < nVal ? val : train).push(idx[o]!));
  });
  return { train: pick(set, train, `${set.name}:train`), val: pick(set, val, `${set.name}:val`) };
}

/**
 * Only the named (or numbered) classes, relabelled 0..m-1 in the order given; names are kept.
 * E.g. Fashion-MNIST classes [5,6,7,8,9] → labels 0..4 named sandal … ankle boot.
 */
export function subsetClasses(set: LabeledSet, classes: readonly (string | number)[]): LabeledSet {
  if (classes.length === 0) throw new CompilerError('CONFIG_INVALID', `${set.name}: empty class subset`);
  const old = classes.map((c) => {
    const i = typeof c === 'number' ? (Number.isInteger(c) && c >= 0 && c < set.classes.length ? c : -1) : set.classes.indexOf(c);
    if (i < 0) throw new DataError('CLASS_MISMATCH', `${set.name}: no class ${JSON.stringify(c)}; classes are ${set.classes.map((n, j) => `${j}:${n}`).join(', ')}`);
    return i;
  });
  if (new Set(old).size !== old.length) throw new CompilerError('CONFIG_INVALID', `${set.name}: class subset [${classes.join(', ')}] names a class twice`);
  const relabel = new Map(old.map((o, i) => [o, i]));
  const samples: Sample[] = [];
  for (const s of set.samples) {
    const label = relabel.get(s.label);
    if (label !== undefined) samples.push({ ...s, label });
  }
  return { name: `${set.name}[${classes.join(',')}]`, classes: old.map((i) => set.classes[i]!), size: set.size, samples };
}

/**
 * Throws CLASS_MISMATCH unless the set's classes are exactly `expected`, in order: a head trained
 * on other classes (or the same in another order) would score the wrong outputs. `where` names the
 * checkpoint or manifest the expected list came from.
 */
export function assertClasses(set: LabeledSet, expected: readonly string[], where: string): void {
  const same = expected.length === set.classes.length && expected.every((c, i) => c === set.classes[i]);
  if (same) return;
  const missing = expected.filter((c) => !set.classes.includes(c));
  const extra = set.classes.filter((c) => !expected.includes(c));
  const detail = missing.length || extra.length
    ? `${missing.length ? `missing [${missing.join(', ')}]` : ''}${missing.length && extra.length ? ', ' : ''}${extra.length ? `not in ${where}: [${extra.join(', ')}]` : ''}`
    : `same names in another order`;
  throw new DataError('CLASS_MISMATCH', `${set.name}: classes [${set.classes.join(', ')}] do not match ${where}: [${expected.join(', ')}] (${detail}); train a new head or use the matching data`);
}

function pick(set: LabeledSet, indices: number[], name: string): LabeledSet {
  indices.sort((a, b) => a - b);
  return { name, classes: set.classes, size: set.size, samples: indices.map((i) => set.samples[i]!) };
}
