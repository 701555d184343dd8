// Keep rules and the keeper without a device: which results the rules pick, that the rolling
// limits never let more through than any window allows (property-tested against a brute-force
// count), per-camera overrides, and the keeper's bookkeeping: a frame kept once whatever the
// reasons, a burst of NG bounded by the limits, labels by seq and by trigger id (with and without
// the frame still held), shadow disagreements before and after the result is durable.

import test from 'ava';
import fc from 'fast-check';
import { validateManifest, type Manifest } from '../runtime/artifact/manifest.ts';
import { KeepConfig, rulesFor, type KeepConfigInput } from '../runtime/keep/config.ts';
import { Keeper } from '../runtime/keep/keeper.ts';
import { KeepLimiter, keepReasons } from '../runtime/keep/rules.ts';
import { createMemoryOutbox } from '../runtime/mqtt/outbox-memory.ts';
import type { PipelineResult } from '../runtime/pipeline/types.ts';
import { classOf, decodeFrameMessage, LabelPayload } from '../runtime/schema/keep.ts';
import type { ResultInput, ResultPayload } from '../runtime/schema/payloads.ts';
import { recordingLog } from './helpers/brokers.ts';
import { draft } from './helpers/runtime-models.ts';

const rules = KeepConfig.parse({ dir: '/x' }).rules;

test('rules: NG, uncertain around the threshold (okScore when there is one), random sample', (t) => {
  const never = () => 0.99;
  t.deepEqual(keepReasons({ decision: 'NG', score: 0.9 }, 0.5, rules, never), ['ng']);
  t.deepEqual(keepReasons({ decision: 'OK', score: 0.52 }, 0.5, rules, never), ['uncertain']);
  t.deepEqual(keepReasons({ decision: 'OK', score: 0.99, okScore: 0.53 }, 0.5, rules, never), ['uncertain'], 'okScore decides, not the top-1 score');
  t.deepEqual(keepReasons({ decision: 'OK', score: 0.9 }, 0.5, rules, never), []);
  const sample = { ...rules, random: { rate: 0.1 } };
  t.deepEqual(keepReasons({ decision: 'OK', score: 0.9 }, 0.5, sample, () => 0.05), ['random']);
  t.deepEqual(keepReasons({ decision: 'NG', score: 0.48 }, 0.5, { ...sample, ng: false }, () => 0.5), ['uncertain']);
});

test('limits: never more keeps in any minute/hour/day window than allowed, never closer than minIntervalMs', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 200_000 }), { minLength: 1, maxLength: 300 }),
      fc.record({ perMinute: fc.option(fc.integer({ min: 0, max: 8 })), perHour: fc.option(fc.integer({ min: 0, max: 40 })), perDay: fc.option(fc.integer({ min: 0, max: 100 })), minIntervalMs: fc.integer({ min: 0, max: 5000 }) }),
      (gaps, limits) => {
        const lim = new KeepLimiter(limits);
        const kept: number[] = [];
        let now = 1_000_000;
        for (const g of gaps) {
          now += g;
          if (lim.take(now) === null) kept.push(now);
        }
        for (let i = 0; i < kept.length; i++) {
          if (i > 0 && kept[i]! - kept[i - 1]! < limits.minIntervalMs) return false;
          for (const [max, span] of [[limits.perMinute, 60_000], [limits.perHour, 3_600_000], [limits.perDay, 86_400_000]] as const) {
            if (max === null) continue;
            const inWindow = kept.filter((k) => k > kept[i]! - span && k <= kept[i]!).length;
            if (inWindow > max) return false;
          }
        }
        return true;
      },
    ),
  );
  t.pass();
});

test('limits: a refusal names the limit; the window frees up as time passes', (t) => {
  const lim = new KeepLimiter({ perMinute: 2, perHour: null, perDay: null, minIntervalMs: 100 });
  t.is(lim.take(0), null);
  t.is(lim.take(50), 'minIntervalMs');
  t.is(lim.take(200), null);
  t.is(lim.take(30_000), 'perMinute');
  t.is(lim.take(60_001), null, 'the first keep left the window');
});

test('per-camera rules override the defaults, limits field by field; unknown fields are refused', (t) => {
  const cfg = KeepConfig.parse({ dir: '/x', rules: { random: { rate: 0.01 }, limits: { perMinute: 5 } }, cameras: { c2: { ng: false, limits: { perHour: 7 } } } });
  const r2 = rulesFor(cfg, 'c2');
  t.false(r2.ng);
  t.deepEqual(r2.random, { rate: 0.01 });
  t.deepEqual(r2.limits, { perMinute: 5, perHour: 7, perDay: 1000, minIntervalMs: 1000 });
  t.is(rulesFor(cfg, 'c1'), cfg.rules);
  const bad = KeepConfig.safeParse({ dir: '/x', rules: { ngg: true } });
  t.false(bad.success);
  t.regex(JSON.stringify(bad.error?.issues), /ngg/);
});

test('classOf maps a PLC class token back to the model label', (t) => {
  t.is(classOf('missing_hole', ['ok', 'missing hole']), 'missing hole');
  t.is(classOf('dent', ['ok', 'dent']), 'dent');
  t.is(classOf('burr', ['ok', 'dent']), 'burr', 'a class the model does not know stays as given');
});

// ------------------------------------------------------------------ the keeper

const manifest: Manifest = validateManifest({ schemaVersion: 1, ...draft({ release: 3 }), model: { sha256: 'c'.repeat(64), bytes: 1 }, createdAt: '2026-01-01T00:00:00Z' }, 'test');

function harness(keep: Partial<KeepConfigInput> = {}, draw = () => 0.99) {
  const spool = createMemoryOutbox();
  let clock = 1_000_000;
  const keeper = new Keeper({
    device: 'd1',
    config: KeepConfig.parse({ dir: '/x', ...keep }),
    cameras: ['c1', 'c2'],
    spool,
    seqEpoch: () => 'E',
    spooled: () => {},
    log: recordingLog().log,
    now: () => clock,
    draw,
  });
  let seq = 0;
  /** A result through observe → accepted, `ms` after the last. */
  const produce = (o: { camera?: string; decision?: 'OK' | 'NG'; score?: number; triggerId?: string | null; ms?: number } = {}) => {
    clock += o.ms ?? 2000;
    const camera = o.camera ?? 'c1';
    const data = new Uint8Array(32 * 32 * 3).fill(seq % 256);
    const input: ResultInput = {
      camera,
      frameId: String(seq),
      triggerId: o.triggerId ?? null,
      captureTs: Date.now(),
      model: { name: 'm', version: '1', sha256: 'a'.repeat(64) },
      label: 'class1',
      score: o.score ?? 0.9,
      topK: [{ label: 'class1', score: o.score ?? 0.9 }],
      decision: o.decision ?? 'OK',
      latency: { captureToInferMs: 1, inferMs: 1, postMs: 0, totalMs: 2 },
    };
    const r = { input, frame: { data, width: 32, height: 32, channels: 3, camera, frameId: seq, captureTs: Date.now() }, manifest, threshold: 0.5 } as unknown as PipelineResult;
    const result: ResultPayload = { ...input, v: 1, device: 'd1', seq: seq++, seqEpoch: 'E', publishTs: Date.now() };
    keeper.observe(r);
    keeper.accepted(r, result);
    return { r, result };
  };
  const frames = () => [...spool.entries()].filter((e) => e.topic.endsWith('/frame')).map((e) => decodeFrameMessage(e.payload)).map((d) => (d.ok ? d.header : null));
  const labels = () => [...spool.entries()].filter((e) => e.topic.endsWith('/label')).map((e) => LabelPayload.parse(JSON.parse(e.payload.toString())));
  return { keeper, spool, produce, frames, labels, tick: (ms: number) => (clock += ms) };
}

test('keeper: an NG frame is kept once with its result, release and reasons; an OK one is not', async (t) => {
  const h = harness();
  h.produce({ decision: 'OK', score: 0.9 });
  const { result } = h.produce({ decision: 'NG', score: 0.52 });
  await h.keeper.settled();
  const f = h.frames();
  t.is(f.length, 1);
  t.deepEqual(f[0]!.result, result);
  t.deepEqual(f[0]!.reasons, ['ng', 'uncertain']);
  t.is(f[0]!.release, 3);
  t.is(f[0]!.image.contentType, 'image/png');
  t.is(h.keeper.counters.kept, 1);
});

test('keeper: a burst of NG is bounded by the camera limits, the rest counted as limited', async (t) => {
  const h = harness({ rules: { limits: { perMinute: 3, perHour: null, perDay: null, minIntervalMs: 0 } } });
  for (let i = 0; i < 50; i++) h.produce({ decision: 'NG', ms: 100 });
  await h.keeper.settled();
  t.is(h.frames().length, 3);
  t.is(h.keeper.counters.limited, 47);
  t.is(h.keeper.counters.limitedBy.perMinute, 47);
  // Another camera has its own limits.
  h.produce({ camera: 'c2', decision: 'NG', ms: 100 });
  await h.keeper.settled();
  t.is(h.frames().length, 4);
});

test('keeper: a label by seq keeps the held frame (past the limits), one by an unknown trigger id is sent without one', async (t) => {
  const h = harness({ rules: { ng: false, uncertain: null, limits: { perMinute: 0 } } });
  const { result } = h.produce({ decision: 'OK', triggerId: 'T17' });
  const reply = await h.keeper.label({ seq: result.seq, decision: 'NG', class: 'class3', source: 'mqtt', by: 'anna' });
  t.deepEqual(reply.target, { seqEpoch: 'E', seq: result.seq });
  t.true(reply.frameKept);
  await h.keeper.settled();
  t.deepEqual(h.frames().map((f) => f!.reasons), [['label']]);
  const [l] = h.labels();
  t.like(l, { labelId: reply.labelId, camera: 'c1', triggerId: 'T17', decision: 'NG', class: 'class3', source: 'mqtt', by: 'anna', frameKept: true });

  const byTrigger = await h.keeper.label({ camera: 'c1', triggerId: 'T17', decision: 'OK', source: 'plc' });
  t.deepEqual(byTrigger.target, { seqEpoch: 'E', seq: result.seq }, 'the trigger id is resolved to its result');
  t.true(byTrigger.frameKept, 'already kept: the recorder has the frame');
  await h.keeper.settled();
  t.is(h.frames().length, 1, 'a frame is kept once');

  const unknown = await h.keeper.label({ camera: 'c1', triggerId: 'T99', decision: 'NG', source: 'plc' });
  t.is(unknown.target, null);
  t.false(unknown.frameKept);
  t.is(h.keeper.counters.labelsWithoutFrame, 1);
  t.is(h.labels().length, 3);
  await t.throwsAsync(h.keeper.label({ camera: 'c2', seq: result.seq, decision: 'OK', source: 'mqtt' }), { message: /camera c1, not c2/ });
  await t.throwsAsync(h.keeper.label({ camera: 'nope', seq: 0, decision: 'OK', source: 'mqtt' }), { message: /no camera "nope"/ });
});

test('keeper: the recent ring forgets old results (their labels carry the seq, no frame)', async (t) => {
  const h = harness({ recent: 2, rules: { ng: false, uncertain: null } });
  const first = h.produce();
  h.produce();
  h.produce();
  const r = await h.keeper.label({ seq: first.result.seq, decision: 'NG', source: 'mqtt' });
  t.deepEqual(r.target, { seqEpoch: 'E', seq: first.result.seq });
  t.false(r.frameKept);
  t.is(h.labels()[0]!.camera, null, 'the device no longer knows its camera');
});

test('keeper: a shadow disagreement keeps the frame with what the candidate said, before or after durability', async (t) => {
  const h = harness({ rules: { ng: false, uncertain: null } });
  const cand = { model: { name: 'm', version: '2', sha256: 'e'.repeat(64) }, label: 'class4', decision: 'NG' as const };
  const { r } = h.produce();
  h.keeper.shadow({ camera: 'c1', frame: r.frame.data, candidate: cand });
  await h.keeper.settled();
  t.deepEqual(h.frames().map((f) => [f!.reasons, f!.shadow?.label]), [[['shadow'], 'class4']]);
  h.keeper.shadow({ camera: 'c1', frame: r.frame.data, candidate: cand });
  await h.keeper.settled();
  t.is(h.frames().length, 1, 'kept once');
});
