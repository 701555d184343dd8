// The drift alarm's parts: PSI itself, the class-mix-adjusted score PSI (a line with fewer defects
// than the validation set is not drift; scores that moved are), the reference the compiler writes
// into the manifest (validated against the labels), and the monitor raising `drift` drifting and
// recovered events with hysteresis, starting over for a new model.

import test from 'ava';
import fc from 'fast-check';
import { ArtifactError } from '../runtime/artifact/errors.ts';
import { validateManifest, type Manifest } from '../runtime/artifact/manifest.ts';
import { driftReference, scoreBin, type DriftReference } from '../runtime/artifact/reference.ts';
import { DriftConfig, DriftMonitor } from '../runtime/drift/monitor.ts';
import { classPsi, psi, scorePsi } from '../runtime/drift/psi.ts';
import type { PipelineResult } from '../runtime/pipeline/types.ts';
import type { EventInput } from '../runtime/schema/payloads.ts';
import { mulberry32 } from '../devices/rng.ts';
import { draft } from './helpers/runtime-models.ts';
import { referenceFromLogits } from '../compiler/export/reference.ts';

test('psi: zero for the same distribution, grows with the shift, never negative', (t) => {
  t.true(psi([250, 250, 250, 250], [0.25, 0.25, 0.25, 0.25]) < 1e-9);
  const small = psi([300, 250, 250, 200], [0.25, 0.25, 0.25, 0.25]);
  const large = psi([700, 100, 100, 100], [0.25, 0.25, 0.25, 0.25]);
  t.true(small > 0 && small < 0.1, `small ${small}`);
  t.true(large > 0.5, `large ${large}`);
  fc.assert(fc.property(fc.array(fc.nat(1000), { minLength: 2, maxLength: 12 }), fc.array(fc.double({ min: 0.01, max: 1, noNaN: true }), { minLength: 12, maxLength: 12 }), (obs, w) => {
    const e = w.slice(0, obs.length);
    const s = e.reduce((a, b) => a + b, 0);
    return psi(obs, e.map((x) => x / s)) >= -1e-12;
  }));
});

test('scoreBin: edges are closed on the left, 1 lands in the last bin', (t) => {
  const edges = [0, 0.5, 0.9, 1];
  t.deepEqual([0, 0.49, 0.5, 0.89, 0.9, 0.999, 1].map((s) => scoreBin(edges, s)), [0, 0, 1, 1, 2, 2, 2]);
});

/** Probabilities for N parts: class c predicted with top-1 score drawn around `conf`. */
function probs(rng: () => number, mix: number[], conf: number, C = mix.length, N = 1000): { p: Float32Array; labels: number[] } {
  const p = new Float32Array(N * C);
  const labels: number[] = [];
  for (let n = 0; n < N; n++) {
    let u = rng();
    let c = 0;
    while (c < C - 1 && u >= mix[c]!) u -= mix[c++]!;
    const top = Math.min(0.999, Math.max(1 / C + 0.01, conf + (rng() - 0.5) * 0.1));
    for (let k = 0; k < C; k++) p[n * C + k] = k === c ? top : (1 - top) / (C - 1);
    labels.push(c);
  }
  return { p, labels };
}

function windowHist(ref: DriftReference, p: Float32Array, C: number): { hist: number[][]; counts: number[] } {
  const B = ref.edges.length - 1;
  const hist = Array.from({ length: C }, () => new Array<number>(B).fill(0));
  for (let n = 0; n < p.length / C; n++) {
    let best = 0;
    for (let c = 1; c < C; c++) if (p[n * C + c]! > p[n * C + best]!) best = c;
    hist[best]![scoreBin(ref.edges, p[n * C + best]!)]!++;
  }
  return { hist, counts: hist.map((h) => h.reduce((a, b) => a + b, 0)) };
}

test('score PSI ignores a change of class mix, sees scores that moved; class PSI sees the mix', (t) => {
  const rng = mulberry32(5);
  const ref = driftReference(probs(rng, [0.5, 0.5], 0.95).p, 2);
  const sameScoresFewerDefects = windowHist(ref, probs(rng, [0.95, 0.05], 0.95, 2, 500).p, 2);
  const lessSure = windowHist(ref, probs(rng, [0.5, 0.5], 0.7, 2, 500).p, 2);
  const s1 = scorePsi(ref, sameScoresFewerDefects.hist);
  const k1 = classPsi(ref, sameScoresFewerDefects.counts);
  const s2 = scorePsi(ref, lessSure.hist);
  t.log(`mix change: score PSI ${s1.toFixed(3)}, class PSI ${k1.toFixed(3)}; scores moved: score PSI ${s2.toFixed(3)}`);
  t.true(s1 < 0.05);
  t.true(k1 > 0.5);
  t.true(s2 > 1);
});

test('the compiler\'s reference: per-class counts and score histograms from logits; the manifest checks it against the labels', (t) => {
  const logits = Float32Array.from([4, 0, 0, 0, 4, 0, 0, 0, 0.1, 3, 0, 0]); // 4 parts, 3 classes
  const ref = referenceFromLogits(logits, 3);
  t.is(ref.samples, 4);
  t.deepEqual(ref.classes.map((c) => c.count), [2, 1, 1]);
  t.is(ref.classes[2]!.scores.reduce((a, b) => a + b, 0), 1);
  const m = (over: object) => validateManifest({ schemaVersion: 1, ...draft({ labels: ['a', 'b', 'c'] }), model: { sha256: 'c'.repeat(64), bytes: 1 }, createdAt: '2026-01-01T00:00:00Z', ...over }, 'x.epk');
  t.deepEqual(m({ reference: ref }).reference, ref);
  t.is(m({}).reference, undefined, 'an older manifest has none');
  const e1 = t.throws(() => m({ reference: { ...ref, classes: ref.classes.slice(0, 2), samples: 3 } }), { instanceOf: ArtifactError });
  t.regex(e1.message, /reference\.classes: has 2 entries for 3 labels/);
  const e2 = t.throws(() => m({ reference: { ...ref, samples: 5 } }), { instanceOf: ArtifactError });
  t.regex(e2.message, /reference\.samples: is 5/);
});

// ------------------------------------------------------------------ the monitor

function manifestWith(ref: DriftReference, sha = 'b'): Manifest {
  return validateManifest({ schemaVersion: 1, ...draft({ labels: ['ok', 'ng'], prompts: { sha256: sha.repeat(64) } }), model: { sha256: 'c'.repeat(64), bytes: 1 }, createdAt: '2026-01-01T00:00:00Z', reference: ref }, 'x.epk');
}

function result(m: Manifest, label: string, score: number): PipelineResult {
  return { input: { camera: 'cam', label, score, model: { name: 'm', version: '1', sha256: 'a'.repeat(64) } }, manifest: m } as unknown as PipelineResult;
}

test('monitor: quiet on reference-like results, drifting after scores move, recovered when they come back', (t) => {
  const rng = mulberry32(11);
  const ref = driftReference(probs(rng, [0.8, 0.2], 0.95).p, 2);
  const m = manifestWith(ref);
  const events: EventInput[] = [];
  const mon = new DriftMonitor(DriftConfig.parse({ window: 200, minFrames: 100, every: 10 }), (e) => void events.push(e));
  const feed = (n: number, conf: number) => {
    const { p } = probs(rng, [0.8, 0.2], conf, 2, n);
    for (let i = 0; i < n; i++) {
      const c = p[i * 2]! > p[i * 2 + 1]! ? 0 : 1;
      mon.observe(result(m, c === 0 ? 'ok' : 'ng', p[i * 2 + c]!));
    }
  };
  feed(400, 0.95);
  t.deepEqual(events, [], 'no alarm on the reference distribution');
  t.false(mon.figures('cam')!.drifting);
  let drifted = 0;
  for (; drifted < 300 && events.length === 0; drifted += 10) feed(10, 0.7);
  t.is(events.length, 1);
  t.like(events[0], { type: 'drift', camera: 'cam', state: 'drifting', threshold: { scorePsi: 0.25, classPsi: null } });
  t.log(`alarm after ${drifted} drifted results (window 200)`);
  t.true(drifted <= 100);
  feed(400, 0.95);
  t.is(events.length, 2);
  t.like(events[1], { type: 'drift', state: 'recovered' });
});

test('monitor: a new model starts a new window; a manifest without reference is not watched', (t) => {
  const rng = mulberry32(3);
  const ref = driftReference(probs(rng, [0.5, 0.5], 0.95).p, 2);
  const events: EventInput[] = [];
  const mon = new DriftMonitor(DriftConfig.parse({ window: 100, minFrames: 50, every: 10 }), (e) => void events.push(e));
  const m1 = manifestWith(ref, 'b');
  const { p } = probs(rng, [0.5, 0.5], 0.95, 2, 80);
  for (let i = 0; i < 80; i++) mon.observe(result(m1, p[2 * i]! > 0.5 ? 'ok' : 'ng', Math.max(p[2 * i]!, p[2 * i + 1]!)));
  t.is(mon.figures('cam')!.frames, 80);
  t.false(mon.figures('cam')!.drifting);
  mon.observe(result(manifestWith(ref, 'd'), 'ok', 0.95));
  t.is(mon.figures('cam'), null, 'a new window for the new prompts');
  const bare = validateManifest({ schemaVersion: 1, ...draft(), model: { sha256: 'c'.repeat(64), bytes: 1 }, createdAt: '2026-01-01T00:00:00Z' }, 'x.epk');
  for (let i = 0; i < 200; i++) mon.observe(result(bare, 'class1', 0.3));
  t.is(mon.figures('cam'), null);
  t.deepEqual(events, []);
  const off = new DriftMonitor(DriftConfig.parse({ enabled: false }), () => t.fail());
  for (let i = 0; i < 300; i++) off.observe(result(m1, 'ok', 0.3));
  t.is(off.figures('cam'), null);
});
