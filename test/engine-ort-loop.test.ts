/**
 * The ort engine through the real trainer (compiler/train/loop.ts) on Fashion-MNIST and the
 * fixture backbone: a short run with prompt dropout on, an interrupted run resumed from its
 * checkpoint ending bit-identical to an uninterrupted one, and `engine: auto | tfjs` saying
 * which engine runs and why.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCompileConfig } from '../compiler/config/compile-config.ts';
import { prepareJob } from '../compiler/train/job.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress, type Progress } from '../compiler/train/progress.ts';
import { readSafetensors } from '../compiler/backbones/safetensors.ts';
import type { TrainState } from '../compiler/train/checkpoint.ts';
import { fixturePath } from './helpers/fixtures.ts';
import { initTf } from '../compiler/ops/tf-backend.ts';

// Settle the tfjs backend (graph folding uses it) before tests start: two concurrent first
// initTf calls race on tf.setBackend. Serial tests also keep ORT's threads from competing.
test.before(async () => {
  await initTf();
});

const dir = mkdtempSync(join(tmpdir(), 'ep-ort-'));
function config(name: string, engine: string): string {
  const f = join(dir, `${name}.yaml`);
  writeFileSync(
    f,
    `name: ${name}
backbone: { arch: vit_fixture_patch8_32, weights: ${fixturePath('vit_fixture.safetensors')} }
data: { kind: fashion-mnist, classes: [5, 7, 9], limitPerClass: 16, valLimitPerClass: 8 }
method: { name: vpt-deep, options: { prompts: 2, dropout: 0.1 } }
recipe: { epochs: 2, batchSize: 8, warmupEpochs: 1, labelSmoothing: 0.1, optimizer: { lr: 0.5 } }
seed: 3
engine: ${engine}
output: { dir: ${name}-out }
`,
  );
  return f;
}

const quiet = makeProgress('none');
async function run(file: string, opts: { resume?: boolean; abortAtStep?: number } = {}) {
  const abort = new AbortController();
  const logs: string[] = [];
  const progress: Progress = { ...quiet, log: (l) => void logs.push(l), step: (i) => void (i === opts.abortAtStep && abort.abort()) };
  const p = await prepareJob(loadCompileConfig(file), file, { resume: opts.resume ?? false, progress, signal: abort.signal });
  return { result: await train(p.job), out: p.job.outDir, logs };
}
const tensors = (out: string) => readSafetensors(join(out, 'checkpoint/params.safetensors')).tensors;

for (const engine of ['ort', 'tfjs']) {
  test.serial(`${engine} through the trainer: an interrupted run resumed from its checkpoint ends bit-identical to an uninterrupted one`, async (t) => {
    const straight = await run(config(`straight-${engine}`, engine));
    t.false(straight.result.interrupted);
    t.is(straight.result.state.engine, engine);
    if (engine === 'ort') t.regex(straight.result.state.backend, /^onnxruntime-node [\d.]+ (cpu|cuda)/);
    t.is(straight.result.state.history.length, 2);
    t.true(straight.result.state.history.every((h) => Number.isFinite(h.trainLoss) && h.valTop1 >= 0 && h.valTop1 <= 1));
    t.true(straight.logs.some((l) => l.startsWith(`engine ${engine} (`) && l.includes('): set in the config')), straight.logs.join('\n'));
    t.log(straight.result.state.history.map((h) => `epoch ${h.epoch}: train loss ${h.trainLoss.toFixed(4)}, val top-1 ${(100 * h.valTop1).toFixed(1)} %, ${h.imagesPerSec.toFixed(1)} img/s`).join('\n'));

    const cut = await run(config(`cut-${engine}`, engine), { abortAtStep: 3 });
    t.true(cut.result.interrupted);
    const s = JSON.parse(readFileSync(join(cut.out, 'checkpoint/state.json'), 'utf8')) as TrainState;
    t.is(s.stepInEpoch, 3);
    const resumed = await run(config(`cut-${engine}`, engine), { resume: true });
    t.is(resumed.result.state.globalStep, straight.result.state.globalStep);
    const a = tensors(straight.out);
    const b = tensors(resumed.out);
    t.deepEqual([...a.keys()].sort(), ['deep_prompt_embeddings', 'head.bias', 'head.weight', 'prompt_embeddings']);
    for (const [k, v] of a) t.deepEqual([...b.get(k)!.data], [...v.data], k);
    t.deepEqual(resumed.result.state.history.map((h) => h.valTop1), straight.result.state.history.map((h) => h.valTop1));
  });
}

test.serial('engine auto picks ort and says why; engine tfjs is honoured', async (t) => {
  const f = config('auto', 'auto');
  const logs: string[] = [];
  const progress: Progress = { ...quiet, log: (l) => void logs.push(l) };
  const auto = await prepareJob(loadCompileConfig(f, ['recipe.epochs=1']), f, { resume: false, progress });
  const e = await auto.job.makeEngine(auto.job.initial);
  t.is(e.name, 'ort');
  t.regex(logs.join('\n'), /^engine ort \(onnxruntime-node .*\): auto picks ort: whole training steps run in onnxruntime\n {2}training graph: \d+ forward \+ \d+ backward nodes/);
  t.log(logs.join('\n'));
  logs.length = 0;
  e.dispose();
  const tf = await prepareJob(loadCompileConfig(config('tf', 'tfjs')), f, { resume: false, progress });
  const e2 = await tf.job.makeEngine(tf.job.initial);
  t.is(e2.name, 'tfjs');
  t.regex(logs.join('\n'), /^engine tfjs \(.*\): set in the config/);
  e2.dispose();
  t.throws(() => loadCompileConfig(f, ['engine=torch']), { message: /engine/ });
});
