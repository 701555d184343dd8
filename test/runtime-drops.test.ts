// Newest frame wins: with inference slower than the cameras, each camera's waiting frame is
// replaced by the newer one and the replaced frames are counted; nothing else is lost, and two
// cameras share one session (batched together).
import test from 'ava';
import { SyntheticSource } from '../devices/cameras/synthetic.ts';
import { FreeRunTrigger } from '../devices/triggers/free-run.ts';
import { loadTrustedKeys, publicKeyPem, generateKeyPair } from '../runtime/artifact/index.ts';
import { Pipeline, type PipelineResult } from '../runtime/pipeline/pipeline.ts';
import { ModelHost, type Classifier } from '../runtime/session/host.ts';
import { cpuProfile, makeArtifact, SIZE } from './helpers/runtime-models.ts';

/** A real session behind a delay: inference at ~1000/delayMs batches per second. */
function slow(host: ModelHost, delayMs: number): Classifier & { batches: number[] } {
  const batches: number[] = [];
  return {
    batches,
    get current() {
      return host.current;
    },
    async classify(frames, k) {
      batches.push(frames.length);
      await new Promise((r) => setTimeout(r, delayMs));
      return host.classify(frames, k);
    },
  };
}

test('a slow session: the newest frame wins, dropped frames are counted, two cameras share batches', async (t) => {
  t.timeout(20_000);
  const key = generateKeyPair();
  const host = new ModelHost({ profile: cpuProfile({ maxBatch: 4 }), trustedKeys: await loadTrustedKeys([publicKeyPem(key.publicKey)]) });
  t.teardown(() => host.close());
  await host.load(makeArtifact({}, { privateKey: key.privateKey }).bytes);
  const classifier = slow(host, 60);
  const format = { width: SIZE, height: SIZE, channels: 3 as const };
  const COUNT = 60;
  const cams = ['c1', 'c2'].map((id, i) => ({ id, source: new SyntheticSource({ camera: id, format, fps: 100, count: COUNT, seed: i + 1 }), trigger: new FreeRunTrigger() }));
  const p = new Pipeline({ cameras: cams, classifier, topK: 3 });
  const results: PipelineResult[] = [];
  p.on('result', (r) => void results.push(r));
  const ended = new Promise<void>((r) => p.once('ended', () => r()));
  await p.start();
  await ended;
  await p.stop();

  const stats = p.stats();
  for (const id of ['c1', 'c2']) {
    const s = stats[id]!;
    const mine = results.filter((r) => r.input.camera === id);
    t.is(s.framesIn, COUNT);
    t.is(s.triggered, COUNT, 'free-run: every frame counts');
    t.is(s.processed, mine.length);
    t.true(s.dropped > COUNT / 2, `${id}: most frames dropped at 100 fps vs ~16 batches/s (dropped ${s.dropped})`);
    t.is(s.processed + s.dropped, s.triggered, 'every counted frame is either processed or dropped');
    const ids = mine.map((r) => r.frame.frameId);
    t.deepEqual(ids, [...ids].sort((a, b) => a - b), 'frames are processed in order');
    t.is(ids.at(-1), COUNT, 'the last frame always wins');
  }
  t.true(classifier.batches.some((n) => n === 2), `the cameras shared batches (sizes ${classifier.batches.join(',')})`);
  t.true(results.every((r) => r.batchSize <= 4));
  t.true(results.every((r) => r.input.latency.captureToInferMs < 500), 'no stale frame was inferred');
  // One session time per batch (the 60 ms wrapper delay is outside it), each also on its results.
  t.is(p.inferMs.count, classifier.batches.length, 'one inference time recorded per batch');
  const p50 = p.inferMs.quantile(0.5);
  const p99 = p.inferMs.quantile(0.99);
  t.true(p50 !== null && p99 !== null && p50 > 0 && p50 <= p99, `p50 ${p50} ms ≤ p99 ${p99} ms`);
  t.true(p50! < 60, `the median (${p50} ms) times the session alone, not the wrapper's 60 ms delay`);
  t.true(results.every((r) => r.input.latency.inferMs > 0 && r.input.latency.inferMs <= p.inferMs.quantile(1)!));
});

test('frames picked by an armed trigger are never dropped, even when inference is slow', async (t) => {
  const key = generateKeyPair();
  const host = new ModelHost({ profile: cpuProfile({ maxBatch: 1 }), trustedKeys: await loadTrustedKeys([publicKeyPem(key.publicKey)]) });
  t.teardown(() => host.close());
  await host.load(makeArtifact({}, { privateKey: key.privateKey }).bytes);
  const { CommandTrigger } = await import('../devices/triggers/armed.ts');
  const trigger = new CommandTrigger();
  const source = new SyntheticSource({ camera: 'c', format: { width: SIZE, height: SIZE, channels: 3 }, fps: 100, count: 40 });
  const p = new Pipeline({ cameras: [{ id: 'c', source, trigger }], classifier: slow(host, 80) });
  const results: PipelineResult[] = [];
  p.on('result', (r) => void results.push(r));
  const ended = new Promise<void>((r) => p.once('ended', () => r()));
  await p.start();
  for (let i = 1; i <= 5; i++) trigger.fire(`t${i}`); // five triggers at once: five consecutive frames
  await ended;
  await p.stop();
  t.deepEqual(results.map((r) => r.input.triggerId), ['t1', 't2', 't3', 't4', 't5']);
  t.is(p.stats().c!.dropped, 0);
});
