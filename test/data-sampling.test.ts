// k-shot draws, stratified splits, class subsets and the class check against a checkpoint.

import test from 'ava';
import { CompilerError } from '../compiler/ops/errors.ts';
import { DataError } from '../compiler/data/errors.ts';
import { assertClasses, classCounts, kShot, splitFraction, subsetClasses } from '../compiler/data/sampling.ts';
import { syntheticSet } from './helpers/images.ts';

const set = syntheticSet({ ok: 40, scratch: 25, dent: 16 });
const sources = (s: { samples: { source: string }[] }): string[] => s.samples.map((x) => x.source);

test('kShot takes k of every class without replacement, in set order, reproducibly', (t) => {
  const a = kShot(set, 16, 7);
  t.deepEqual(classCounts(a), { ok: 16, scratch: 16, dent: 16 });
  t.is(new Set(sources(a)).size, 48);
  t.deepEqual(sources(a), [...sources(a)].sort((x, y) => set.samples.findIndex((s) => s.source === x) - set.samples.findIndex((s) => s.source === y)));
  t.deepEqual(sources(kShot(set, 16, 7)), sources(a));
  t.notDeepEqual(sources(kShot(set, 16, 8)), sources(a));
  t.deepEqual(a.classes, set.classes);
});

test('a larger k extends a smaller one; a class draws the same whatever other classes exist', (t) => {
  const k4 = new Set(sources(kShot(set, 4, 1)));
  const k8 = new Set(sources(kShot(set, 8, 1)));
  t.true([...k4].every((s) => k8.has(s)));
  const okOnly = sources(kShot(subsetClasses(set, ['ok']), 8, 1));
  t.deepEqual(okOnly, [...k8].filter((s) => s.startsWith('ok/')));
});

test('kShot: a class with fewer than k samples is an error naming it', (t) => {
  const e = t.throws(() => kShot(set, 17, 0), { instanceOf: DataError });
  t.is(e.reason, 'TOO_FEW_SAMPLES');
  t.regex(e.message, /class "dent" has 16 samples, fewer than k=17/);
  t.is(t.throws(() => kShot(set, 0, 0), { instanceOf: CompilerError }).code, 'CONFIG_INVALID');
  t.is(t.throws(() => kShot(set, 2, 1.5), { instanceOf: CompilerError }).code, 'CONFIG_INVALID');
});

test('splitFraction is stratified, disjoint, complete and seeded', (t) => {
  const { train, val } = splitFraction(set, 0.2, 3);
  t.deepEqual(classCounts(val), { ok: 8, scratch: 5, dent: 3 });
  t.deepEqual(classCounts(train), { ok: 32, scratch: 20, dent: 13 });
  const all = [...sources(train), ...sources(val)];
  t.is(new Set(all).size, set.samples.length);
  t.deepEqual(sources(splitFraction(set, 0.2, 3).val), sources(val));
  t.notDeepEqual(sources(splitFraction(set, 0.2, 4).val), sources(val));
  t.throws(() => splitFraction(set, 1, 0), { instanceOf: CompilerError, message: /val fraction must be in \(0, 1\), got 1/ });
});

test('subsetClasses relabels in the order given and keeps names; unknown classes are named', (t) => {
  const s = subsetClasses(set, ['dent', 'ok']);
  t.deepEqual(s.classes, ['dent', 'ok']);
  t.deepEqual(classCounts(s), { dent: 16, ok: 40 });
  t.true(s.samples.every((x) => s.classes[x.label] === x.source.split('/')[0]));
  t.deepEqual(subsetClasses(set, [2, 0]).classes, ['dent', 'ok']);
  const e = t.throws(() => subsetClasses(set, ['ok', 'stain']), { instanceOf: DataError });
  t.is(e.reason, 'CLASS_MISMATCH');
  t.regex(e.message, /no class "stain"; classes are 0:ok, 1:scratch, 2:dent/);
  t.throws(() => subsetClasses(set, ['ok', 0]), { instanceOf: CompilerError, message: /names a class twice/ });
});

test('assertClasses: a set whose classes differ from a checkpoint is an error naming both', (t) => {
  t.notThrows(() => assertClasses(set, ['ok', 'scratch', 'dent'], 'ckpt.json'));
  const e = t.throws(() => assertClasses(set, ['ok', 'scratch', 'stain'], 'runs/a/ckpt.json'), { instanceOf: DataError });
  t.is(e.reason, 'CLASS_MISMATCH');
  t.regex(e.message, /do not match runs\/a\/ckpt\.json: \[ok, scratch, stain\] \(missing \[stain\], not in runs\/a\/ckpt\.json: \[dent\]\)/);
  t.regex(t.throws(() => assertClasses(set, ['scratch', 'ok', 'dent'], 'ckpt')).message, /same names in another order/);
});
