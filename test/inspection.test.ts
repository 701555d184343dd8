// Inspection semantics (issue 15 item 5): the pass rule a device applies to a model with okLabels,
// and the figures a quality engineer reads (escape rate, false-reject rate, AUROC, per class, the
// operating point that holds false rejects ≤ 10 %), checked against brute force on random parts.

import test from 'ava';
import fc from 'fast-check';
import { aurocGoodOverDefective, inspectionMetrics, okScoreOf, operatingPoint, passes, type InspectedPart } from '../runtime/pipeline/inspection.ts';
import { decide } from '../runtime/pipeline/thresholds.ts';
import { MetricAccumulator } from '../compiler/train/metrics.ts';
import type { Manifest } from '../runtime/artifact/manifest.ts';

const LABELS = ['ok', 'scratch', 'dent'];
const manifest = (thresholds: Manifest['thresholds']) => ({ labels: LABELS, thresholds }) as Manifest;

test('decide: with okLabels a part passes when its top label is OK and p(ok) ≥ minConfidence; okScore is reported', (t) => {
  const m = manifest({ okLabels: ['ok'], minConfidence: 0.6 });
  t.deepEqual(decide({ label: 'ok', score: 0.7, probs: [0.7, 0.2, 0.1] }, m, 0.6), { decision: 'OK', okScore: 0.7 });
  t.deepEqual(decide({ label: 'ok', score: 0.5, probs: [0.5, 0.3, 0.2] }, m, 0.6), { decision: 'NG', okScore: 0.5 });
  // A defect on top never passes, even with a threshold so low that p(ok) clears it.
  t.is(decide({ label: 'scratch', score: 0.45, probs: [0.4, 0.45, 0.15] }, m, 0.1).decision, 'NG');
  // Two OK labels: their probabilities add up (p(good) = 0.35 + 0.3).
  const two = { labels: ['ok', 'ok_worn', 'dent'], thresholds: { okLabels: ['ok', 'ok_worn'], minConfidence: 0.6 } } as Manifest;
  const d = decide({ label: 'ok', score: 0.35, probs: [0.35, 0.3, 0.35 - 1e-9] }, two, 0.6);
  t.is(d.decision, 'OK');
  t.true(Math.abs(d.okScore! - 0.65) < 1e-9);
  // Without okLabels (a sorting model): the top score alone, and no okScore.
  t.deepEqual(decide({ label: 'dent', score: 0.7, probs: [0.1, 0.2, 0.7] }, manifest({ minConfidence: 0.6 }), 0.6), { decision: 'OK' });
});

test('escape and false-reject rates, per class, at the threshold', (t) => {
  const parts: InspectedPart[] = [
    { truth: 0, predicted: 0, okScore: 0.9 }, // good, passes
    { truth: 0, predicted: 0, okScore: 0.55 }, // good, below 0.6: false reject
    { truth: 0, predicted: 1, okScore: 0.3 }, // good, a defect on top: false reject
    { truth: 1, predicted: 0, okScore: 0.8 }, // scratch passed: escape
    { truth: 1, predicted: 1, okScore: 0.1 }, // caught
    { truth: 2, predicted: 1, okScore: 0.2 }, // dent caught (as a scratch)
  ];
  const m = inspectionMetrics(parts, { okClasses: [0], minConfidence: 0.6 }, 3);
  t.like(m, { parts: 6, good: 3, defective: 3, escapes: 1, falseRejects: 2 });
  t.is(m.escapeRate, 1 / 3);
  t.is(m.falseRejectRate, 2 / 3);
  t.deepEqual(m.perClass, [
    { count: 3, recall: 2 / 3, failRate: 2 / 3 },
    { count: 2, recall: 0.5, failRate: 0.5 },
    { count: 1, recall: 0, failRate: 1 },
  ]);
  // good scores {0.9, 0.55, 0.3}, defective {0.8, 0.1, 0.2}: 7 of 9 pairs ranked right.
  t.is(m.auroc, 7 / 9);
  // Nothing to measure on: null, never NaN (JSON keeps it).
  const none = inspectionMetrics([{ truth: 1, predicted: 1, okScore: 0 }], { okClasses: [0], minConfidence: 0.5 }, 2);
  t.is(none.falseRejectRate, null);
  t.is(none.auroc, null);
  t.is(none.perClass[0]!.recall, null);
});

test('the operating point: the strictest threshold holding false rejects ≤ 10 %, or unreachable when too many good parts get a defect on top', (t) => {
  // 20 good parts scoring 0.05 … 1.0, two defective ones at 0.5 and 0.97.
  const goods = Array.from({ length: 20 }, (_, i) => ({ truth: 0, predicted: 0, okScore: (i + 1) / 20 }));
  const parts = [...goods, { truth: 1, predicted: 0, okScore: 0.5 }, { truth: 1, predicted: 0, okScore: 0.97 }];
  const op = operatingPoint(parts, [0], 0.1);
  // 2 of 20 may fail: the 3rd lowest good score is the threshold.
  t.is(op.minConfidence, 3 / 20);
  t.is(op.falseRejectRate, 0.1);
  t.is(op.escapeRate, 1);
  t.true(op.reachable);
  // Three good parts with a defect on top: 15 % fail at any threshold.
  const bad = goods.map((g, i) => (i < 3 ? { ...g, predicted: 1 } : g));
  const u = operatingPoint(bad, [0], 0.1);
  t.false(u.reachable);
  t.is(u.minConfidence, 0);
  t.is(u.falseRejectRate, 0.15);
});

const partArb = fc.record({ truth: fc.integer({ min: 0, max: 2 }), predicted: fc.integer({ min: 0, max: 2 }), okScore: fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom(0, 0.5, 1)) });

test('property: AUROC equals the pairwise count with ties as half', (t) => {
  fc.assert(
    fc.property(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 30 }), fc.array(fc.constantFrom(0, 0.25, 0.5, 1), { minLength: 1, maxLength: 30 }), (good, defective) => {
      let wins = 0;
      for (const g of good) for (const d of defective) wins += g > d ? 1 : g === d ? 0.5 : 0;
      return Math.abs(aurocGoodOverDefective(good, defective)! - wins / (good.length * defective.length)) < 1e-9;
    }),
  );
  t.pass();
});

test('property: the operating point holds false rejects ≤ maxFrr and no stricter threshold does', (t) => {
  fc.assert(
    fc.property(fc.array(partArb, { minLength: 1, maxLength: 60 }), fc.constantFrom(0, 0.05, 0.1, 0.25), (parts, maxFrr) => {
      const op = operatingPoint(parts, [0], maxFrr);
      const goods = parts.filter((p) => p.truth === 0);
      const frr = (tau: number) => goods.filter((p) => !passes(p, { okClasses: [0], minConfidence: tau })).length / goods.length;
      if (!op.reachable) return goods.length === 0 || frr(0) > maxFrr + 1e-12;
      if (frr(op.minConfidence) > maxFrr + 1e-12) return false;
      // Any stricter threshold (just above) rejects too many, unless nothing is above it.
      const next = Math.min(...goods.map((p) => p.okScore).filter((s) => s > op.minConfidence), 2);
      return next > 1 || frr(next) > maxFrr + 1e-12 || op.minConfidence === 1;
    }),
  );
  t.pass();
});

test('the trainer\'s metrics carry the inspection figures from softmax probabilities of the logits', (t) => {
  const acc = new MetricAccumulator(3, { okClasses: [0], minConfidence: 0.5 });
  // logits → p(ok): [ln 3, 0, 0] → 0.6; [0, ln 3, 0] → 0.2; [0, 0, 0] → 1/3
  acc.add(Float32Array.of(Math.log(3), 0, 0, 0, Math.log(3), 0, 0, 0, 0), [0, 1, 0]);
  const r = acc.result();
  t.deepEqual(r.predicted, [2, 1, 0]);
  const i = r.inspection!;
  t.is(i.good, 2);
  t.is(i.falseRejects, 1, 'the good part at p(ok) 1/3 fails');
  t.is(i.escapes, 0);
  t.true(Math.abs(okScoreOf([0.6, 0.2, 0.2], [0]) - 0.6) < 1e-12);
});
