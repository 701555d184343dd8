/**
 * Training end to end on real data (Fashion-MNIST from Debian, small limits) and the fixture
 * backbone: checkpoints, report, deterministic resume after an interruption, label checks,
 * and the CLI with a real Ctrl-C.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCompileConfig } from '../compiler/config/compile-config.ts';
import { prepareJob } from '../compiler/train/job.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress, type Progress } from '../compiler/train/progress.ts';
import { encodeSafetensors, readSafetensors } from '../compiler/backbones/safetensors.ts';
import type { TrainState } from '../compiler/train/checkpoint.ts';
import { fixturePath, repoPath } from './helpers/fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'ep-train-'));
function config(name: string, extra = ''): string {
  const f = join(dir, `${name}.yaml`);
  writeFileSync(
    f,
    `name: ${name}
backbone: { arch: vit_fixture_patch8_32, weights: ${fixturePath('vit_fixture.safetensors')} }
data: { kind: fashion-mnist, classes: [5, 7, 9], limitPerClass: 16, valLimitPerClass: 8 }
method: { name: vpt-deep, options: { prompts: 2 } }
recipe: { epochs: 2, batchSize: 8, warmupEpochs: 1, optimizer: { lr: 2.0 } }
seed: 3
output: { dir: ${name}-out }
${extra}`,
  );
  return f;
}

const quiet = makeProgress('none');
async function run(file: string, opts: { resume?: boolean; abortAtStep?: number; sets?: string[] } = {}) {
  const abort = new AbortController();
  const progress: Progress = { ...quiet, step: (i) => void (i === opts.abortAtStep && abort.abort()) };
  const p = await prepareJob(loadCompileConfig(file, opts.sets ?? []), file, { resume: opts.resume ?? false, progress, signal: abort.signal });
  return { result: await train(p.job), out: p.job.outDir };
}
const tensors = (out: string) => readSafetensors(join(out, 'checkpoint/params.safetensors')).tensors;

test('an interrupted run resumed from its checkpoint ends bit-identical to an uninterrupted one', async (t) => {
  const straight = await run(config('straight'));
  t.false(straight.result.interrupted);
  t.is(straight.result.state.epoch, 2);
  t.is(straight.result.state.history.length, 2);
  t.true(existsSync(join(straight.out, 'report.html')));
  t.true(existsSync(join(straight.out, 'best.safetensors')));
  t.true(straight.result.state.history.every((h) => Number.isFinite(h.trainLoss) && h.valTop1 >= 0 && h.valTop1 <= 1));

  const cut = await run(config('cut'), { abortAtStep: 3 });
  t.true(cut.result.interrupted);
  const s = JSON.parse(readFileSync(join(cut.out, 'checkpoint/state.json'), 'utf8')) as TrainState;
  t.is(s.epoch, 0);
  t.is(s.stepInEpoch, 3);
  const resumed = await run(config('cut'), { resume: true });
  t.false(resumed.result.interrupted);
  t.is(resumed.result.state.globalStep, straight.result.state.globalStep);
  const a = tensors(straight.out);
  const b = tensors(resumed.out);
  t.deepEqual([...a.keys()].sort(), ['deep_prompt_embeddings', 'head.bias', 'head.weight', 'prompt_embeddings']);
  for (const [k, v] of a) t.deepEqual([...b.get(k)!.data], [...v.data], k);
});

test('resuming with another label set names the classes', async (t) => {
  const f = config('labels');
  await run(f, { sets: ['recipe.epochs=1'] });
  const e = await t.throwsAsync(run(f, { resume: true, sets: ['recipe.epochs=1', 'data.classes=[5, 7, 8]'] }), { code: 'CHECKPOINT_MISMATCH' } as never);
  t.regex(e!.message, /labels-out: the run there was trained for another job, refusing to reuse its tensors \(1 difference\):\n {2}data\.classes: \[5,7,9\] → \[5,7,8\]\n/);
});

test('resuming on other backbone weights is refused (a finished run read back on swapped weights reported the old backbone\'s training)', async (t) => {
  const f = config('swapped');
  await run(f, { sets: ['recipe.epochs=1'] });
  const { tensors: sd } = readSafetensors(fixturePath('vit_fixture.safetensors'));
  const [k, v] = [...sd].find(([name]) => name === 'norm.weight')!;
  sd.set(k, { shape: v.shape, data: v.data.map((x) => x + 1e-3) });
  const other = join(dir, 'other-weights.safetensors');
  writeFileSync(other, encodeSafetensors(sd));
  const e = await t.throwsAsync(run(f, { resume: true, sets: ['recipe.epochs=1', `backbone.weights=${other}`] }), { code: 'CHECKPOINT_MISMATCH' } as never);
  t.regex(e!.message, /swapped-out: the run there was trained for another job, refusing to reuse its tensors \(\d+ differences?\):\n(.*\n)* {2}backbone\.weights: sha256 [0-9a-f]{12}… → [0-9a-f]{12}… \(.*vit_fixture\.safetensors → .*other-weights\.safetensors\)\n/);
});

function cli(args: string[], onLine?: (line: string, kill: () => void) => void): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [repoPath('tools/edgeprompt.mjs'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const feed = (b: Buffer) => {
      for (const line of b.toString().split('\n')) if (line) onLine?.(line, () => p.kill('SIGINT'));
      out += b.toString();
    };
    p.stdout.on('data', feed);
    p.stderr.on('data', feed);
    p.on('close', (code) => resolve({ code, out }));
  });
}

test('edgeprompt train: progress lines, Ctrl-C saves a checkpoint, --resume finishes the run', async (t) => {
  const f = config('cli', '');
  let sent = false;
  // Enough epochs that Ctrl-C after epoch 1 lands mid-run with the fast ort engine (auto) too.
  const first = await cli(['train', '-c', f, '--epochs', '30', '--progress', 'lines'], (line, kill) => {
    if (!sent && line.startsWith('epoch 1:')) {
      sent = true;
      kill();
    }
  });
  t.is(first.code, 130, first.out);
  t.regex(first.out, /epoch 1: train loss [\d.]+, val loss [\d.]+, val top-1 [\d.]+ %/);
  t.regex(first.out, /interrupted: checkpoint saved at epoch \d+, step \d+; continue with --resume/);
  const second = await cli(['train', '-c', f, '--epochs', '30', '--progress', 'lines', '--resume']);
  t.is(second.code, 0, second.out);
  t.regex(second.out, /continuing the interrupted run in .*cli-out at epoch \d+(, step \d+)? of 30 \(\d+ steps done\)/);
  t.regex(second.out, /epoch 30: /);
  t.regex(second.out, /done: best validation top-1/);
});

test('backbone.imgSize trains at another input size: the grid grows, pos_embed is resampled, images are resized', async (t) => {
  const f = config('size48', '');
  const p = await prepareJob(loadCompileConfig(f, ['backbone.imgSize=48', 'recipe.epochs=1']), f, { resume: false, progress: quiet });
  t.is(p.cfg.imgSize, 48);
  t.deepEqual([...p.backbone.get('pos_embed')!.shape], [1, 1 + 6 * 6, 96]);
  const b = (await p.job.data.trainBatches(0, 8)[Symbol.asyncIterator]().next()).value!;
  t.is(b.x.length, 8 * 3 * 48 * 48);
  const r = await train(p.job);
  t.true(Number.isFinite(r.state.history[0]!.trainLoss));
  const bad = await t.throwsAsync(prepareJob(loadCompileConfig(f, ['backbone.imgSize=50']), f, { resume: false, progress: quiet }));
  t.regex(bad!.message, /image size 50 is not a multiple of patch 8/);
});
