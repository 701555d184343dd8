/**
 * What `compile` does with the run already in output.dir (issue 14 §1), as a user runs it: real
 * processes, real files, Fashion-MNIST from Debian and the fixture backbone.
 *
 * Bug: compile always resumed and compared only the class labels, so after a change of backbone,
 * seed, method option or data it signed the OLD tensors into a manifest carrying the NEW backbone
 * hash. Now a run trained for another job is refused (exit 2, every differing field named,
 * nothing overwritten); an unchanged interrupted run is continued and gives the artifact an
 * uninterrupted run gives. Bug: compile trained on past an early stop; a finished run is now
 * final. Bug: compile signed a near-chance model silently; now it refuses unless --allow-weak.
 */
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCompileConfig } from '../compiler/config/compile-config.ts';
import { prepareJob } from '../compiler/train/job.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress, type Progress } from '../compiler/train/progress.ts';
import { encodeSafetensors, readSafetensors } from '../compiler/backbones/safetensors.ts';
import { checkTop1, top1Floor } from '../compiler/export/gates.ts';
import { readArtifact } from '../runtime/artifact/index.ts';
import { fixturePath, repoPath } from './helpers/fixtures.ts';

const exec = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'ep-compile-resume-'));

async function edgeprompt(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await exec(process.execPath, [repoPath('tools/edgeprompt.mjs'), ...args], { timeout: 170_000, cwd: dir });
    return { code: 0, out: r.stdout + r.stderr, err: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout + x.stderr, err: x.stderr };
  }
}

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
gates: { minTop1: 0 }
output: { dir: ${name}-out }
${extra}`,
  );
  return f;
}

/** Trains in-process; `stopAt` = [epoch, step]: Ctrl-C there (a mid-epoch checkpoint is saved). */
async function trainRun(file: string, stopAt?: [number, number]) {
  const abort = new AbortController();
  let epoch = 0;
  const quiet = makeProgress('none');
  const progress: Progress = { ...quiet, startEpoch: (e) => void (epoch = e), step: (i) => void (stopAt && epoch === stopAt[0] && i === stopAt[1] && abort.abort()) };
  const p = await prepareJob(loadCompileConfig(file), file, { resume: false, progress, signal: abort.signal });
  return train(p.job);
}

/** Every file of a run with its bytes and mtime: "nothing overwritten" means this does not change. */
function snapshot(out: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files[p] = `${statSync(p).mtimeMs}:${readFileSync(p).toString('base64')}`;
    }
  };
  walk(out);
  return files;
}

const resumeCfg = config('job');
const out = join(dir, 'job-out');

test.serial('a run trained for another job is refused, naming the field, exit 2, nothing overwritten; unchanged, it continues to the artifact an uninterrupted run gives', async (t) => {
  const cut = await trainRun(resumeCfg, [1, 2]); // epoch 1 complete, Ctrl-C at step 2 of epoch 2
  t.true(cut.interrupted);
  t.is(cut.state.epoch, 1);
  const before = snapshot(out);

  // Another backbone: the same tensors with one value changed (so another sha256).
  const other = readSafetensors(fixturePath('vit_fixture.safetensors')).tensors;
  other.get('norm.bias')!.data[0]! += 0.5;
  const otherWeights = join(dir, 'other.safetensors');
  writeFileSync(otherWeights, encodeSafetensors(other));
  const changes: [string, RegExp][] = [
    [`backbone.weights=${otherWeights}`, /backbone\.weights: sha256 [0-9a-f]{12}… → [0-9a-f]{12}… \(.*vit_fixture\.safetensors → .*other\.safetensors\)/],
    ['seed=4', /\n {2}seed: 3 → 4\n/],
    ['method.options.prompts=3', /\n {2}method\.options\.prompts: 2 → 3\n/],
    ['data.limitPerClass=12', /\n {2}data\.limitPerClass: 16 → 12\n/],
  ];
  for (const [set, field] of changes) {
    const epk = join(dir, 'refused.epk');
    const r = await edgeprompt('compile', '-c', resumeCfg, '--set', set, '--out', epk, '--progress', 'lines');
    t.is(r.code, 2, `${set}\n${r.out}`);
    t.regex(r.err, /error \[CHECKPOINT_MISMATCH\]: job-out: the run there was trained for another job, refusing to reuse its tensors \(1 difference\):/, set);
    t.regex(r.err, field, set);
    t.regex(r.err, /start over with --fresh \(compile\) or without --resume \(train\), which replaces that run, or set another output\.dir/);
    t.notRegex(r.err, /\n\s+at /, 'no stack trace');
    t.false(existsSync(epk), 'no artifact written');
    t.deepEqual(snapshot(out), before, `${set}: the run is untouched`);
  }

  const resumedEpk = join(dir, 'resumed.epk');
  const resumed = await edgeprompt('compile', '-c', resumeCfg, '--out', resumedEpk, '--progress', 'lines');
  t.is(resumed.code, 0, resumed.out);
  t.regex(resumed.out, /continuing the interrupted run in job-out at epoch 2, step 2 of 2 \(\d+ steps done\)/);
  t.regex(resumed.out, /epoch 2: train loss/);
  t.notRegex(resumed.out, /epoch 1: train loss/);

  const straightEpk = join(dir, 'straight.epk');
  const straight = await edgeprompt('compile', '-c', resumeCfg, '--set', 'output.dir=straight-out', '--out', straightEpk, '--progress', 'lines');
  t.is(straight.code, 0, straight.out);
  t.regex(straight.out, /training from scratch in straight-out \(no earlier run there\)/);

  const a = readArtifact(readFileSync(resumedEpk), resumedEpk);
  const b = readArtifact(readFileSync(straightEpk), straightEpk);
  t.is(a.manifest.prompts.sha256, b.manifest.prompts.sha256, 'the same trained tensors');
  t.deepEqual(a.manifest.metrics, b.manifest.metrics);
  t.is(a.manifest.model.sha256, b.manifest.model.sha256, 'the same model bytes');

  // Finished now: a third compile uses it as it is.
  const again = await edgeprompt('compile', '-c', resumeCfg, '--out', join(dir, 'again.epk'), '--progress', 'lines');
  t.is(again.code, 0, again.out);
  t.regex(again.out, /using the finished run in job-out \(all 2 epochs, best validation top-1 [\d.]+ % at epoch \d\)/);
  t.notRegex(again.out, /epoch \d: train loss/);
});

test.serial('a checkpoint from before fingerprints is refused with a clear message', async (t) => {
  const f = config('old');
  await trainRun(f, [0, 1]);
  const stateFile = join(dir, 'old-out/checkpoint/state.json');
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, unknown>;
  delete state.fingerprint;
  state.version = 1;
  writeFileSync(stateFile, JSON.stringify(state));
  const r = await edgeprompt('compile', '-c', f, '--out', join(dir, 'old.epk'));
  t.is(r.code, 2, r.out);
  t.regex(r.err, /\[CHECKPOINT_MISMATCH\]: .*state\.json: this run was saved by an older EdgePrompt that did not record what it was trained for, so its tensors cannot be checked against this config; start over \(compile --fresh/);
});

test.serial('compile uses a run that stopped early as final; a near-chance model is refused unless --allow-weak; --fresh starts over', async (t) => {
  // lr ≈ 0: validation top-1 cannot improve after epoch 1, so patience 1 stops at epoch 2 of 6.
  const f = config('early', '');
  const sets = ['recipe.epochs=6', 'recipe.patience=1', 'recipe.optimizer.lr=1e-12'];
  const p = await prepareJob(loadCompileConfig(f, sets), f, { resume: false, progress: makeProgress('none') });
  const r = await train(p.job);
  t.true(r.earlyStopped);
  t.is(r.state.epoch, 2);
  t.is(r.state.finished, 'early-stop');

  const weak = await edgeprompt('compile', '-c', f, ...sets.flatMap((s) => ['--set', s]), '--set', 'gates.minTop1=0.99', '--out', join(dir, 'weak.epk'), '--progress', 'lines');
  t.is(weak.code, 2, weak.out);
  t.regex(weak.out, /using the finished run in early-out \(early stop at epoch 2, best validation top-1 [\d.]+ % at epoch 1\)/);
  t.notRegex(weak.out, /epoch [3-6]: train loss/, 'no training past the early stop');
  t.regex(weak.err, /\[MODEL_TOO_WEAK\]: validation top-1 [\d.]+ % on 24 images of 3 classes \(chance 33\.3 %\) is below the floor 99\.0 % \(gates\.minTop1\): this model cannot do the job, so compile refuses to ship it\. .* or pass --allow-weak to ship it anyway/);
  t.false(existsSync(join(dir, 'weak.epk')));

  const allowed = await edgeprompt('compile', '-c', f, ...sets.flatMap((s) => ['--set', s]), '--set', 'gates.minTop1=0.99', '--allow-weak', '--out', join(dir, 'weak.epk'), '--progress', 'lines');
  t.is(allowed.code, 0, allowed.out);
  t.regex(allowed.out, /WARNING: validation top-1 [\d.]+ % .* is below the floor 99\.0 % \(gates\.minTop1\); shipping it because of --allow-weak/);
  t.true(existsSync(join(dir, 'weak.epk')));

  // --fresh replaces the run (here with a 1-epoch one, which the gate then refuses: no artifact, a new run).
  const fresh = await edgeprompt('compile', '-c', f, ...sets.flatMap((s) => ['--set', s]), '--set', 'recipe.epochs=1', '--set', 'gates.minTop1=0.99', '--fresh', '--out', join(dir, 'fresh.epk'), '--progress', 'lines');
  t.is(fresh.code, 2, fresh.out);
  t.regex(fresh.out, /training from scratch in early-out \(replacing the run that was there\)/);
  t.regex(fresh.out, /epoch 1: train loss/);
  const state = JSON.parse(readFileSync(join(dir, 'early-out/checkpoint/state.json'), 'utf8')) as { epoch: number; finished: string };
  t.deepEqual([state.epoch, state.finished], [1, 'all-epochs']);
});

test('the top-1 floor: chance + 25 pt by default, gates.minTop1 when set; the message says what was measured', (t) => {
  t.is(top1Floor(5, undefined).floor, 0.45);
  t.is(top1Floor(2, undefined).floor, 0.75);
  t.is(top1Floor(5, 0.9).floor, 0.9);
  t.regex(checkTop1(0.5, 100, 5, undefined, false), /validation top-1 50\.0 % on 100 images of 5 classes \(chance 20\.0 %\): above the floor 45\.0 %/);
  // The review's case: 27.6 % on 5 classes was signed without a word.
  t.throws(() => checkTop1(0.276, 500, 5, undefined, false), { code: 'MODEL_TOO_WEAK', message: /27\.6 % on 500 images of 5 classes \(chance 20\.0 %\) is below the floor 45\.0 % \(the default, chance \+ 25 pt; set gates\.minTop1 in the config to change it\)/ } as never);
  t.regex(checkTop1(0.276, 500, 5, undefined, true), /^WARNING: .* shipping it because of --allow-weak$/);
});

test.serial('Ctrl-C during compile saves the training checkpoint and exits 130; the same compile continues it', async (t) => {
  const f = config('ctrlc', '');
  const sets = ['--set', 'recipe.epochs=12'];
  const first = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const p = spawn(process.execPath, [repoPath('tools/edgeprompt.mjs'), 'compile', '-c', f, ...sets, '--out', join(dir, 'ctrlc.epk'), '--progress', 'lines'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let sent = false;
    const feed = (b: Buffer) => {
      out += b.toString();
      if (!sent && /\nepoch 1: /.test(out)) {
        sent = true;
        p.kill('SIGINT');
      }
    };
    p.stdout.on('data', feed);
    p.stderr.on('data', feed);
    p.on('close', (code) => resolve({ code, out }));
  });
  t.is(first.code, 130, first.out);
  t.regex(first.out, /interrupted: checkpoint saved at epoch \d+, step \d+/);
  t.regex(first.out, /edgeprompt: interrupted: the run in ctrlc-out is saved; run the same compile again to continue it/);
  t.false(existsSync(join(dir, 'ctrlc.epk')));
  const again = await edgeprompt('compile', '-c', f, ...sets, '--out', join(dir, 'ctrlc.epk'), '--progress', 'lines');
  t.is(again.code, 0, again.out);
  t.regex(again.out, /continuing the interrupted run in ctrlc-out at epoch \d+(, step \d+)? of 12/);
  t.true(existsSync(join(dir, 'ctrlc.epk')));
});
