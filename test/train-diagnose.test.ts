// The trainer says when a run goes wrong (issue 15 item 8): the README's compile example diverged
// (losses jumping between 5 and 32, every prediction `stain`, best top-1 21.2 % on 5 classes) and
// nothing said so. Pure rules on made-up histories, then real runs: the same config learns quietly
// at its lr and prints the divergence warning at lr × 100, in the progress output and report.html;
// `--strict` makes it an error (exit 2, one line).

import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { diagnose, type DiagnoseContext } from '../compiler/train/diagnose.ts';
import type { EpochRecord } from '../compiler/train/epoch-record.ts';
import { loadCompileConfig } from '../compiler/config/compile-config.ts';
import { prepareJob } from '../compiler/train/job.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { fixturePath, repoPath } from './helpers/fixtures.ts';

const run = promisify(execFile);
const CLASSES = ['ok', 'scratch', 'dent', 'missing_hole', 'stain'];
const ctx = (o: Partial<DiagnoseContext> = {}): DiagnoseContext => ({ classes: CLASSES, valCounts: [20, 20, 20, 20, 20], lr: 2, final: false, bestTop1: 0.6, initialLoss: 1.55, ...o });
const epoch = (e: number, trainLoss: number, predicted = [20, 20, 20, 20, 20]): EpochRecord => ({ epoch: e, lr: 0.1, trainLoss, valLoss: trainLoss, valTop1: 0.5, perClass: [0.5, 0.5, 0.5, 0.5, 0.5], predicted, imagesPerSec: 1, seconds: 1 });

test('diverging: a loss far above where the run started, or rising three epochs running', (t) => {
  t.deepEqual(diagnose([epoch(1, 1.5), epoch(2, 1.2)], ctx()), [], 'a healthy run says nothing');
  const [w] = diagnose([epoch(1, 1.5), epoch(2, 17.3)], ctx());
  t.is(w?.code, 'TRAINING_DIVERGING');
  t.regex(w!.message, /epoch 2: mean training loss 17\.300 is more than 2× what guessing scores \(ln 5 = 1\.609\)/);
  t.regex(w!.fix, /lower recipe\.optimizer\.lr \(now 2; try 0\.2\)/);
  // A large first loss (a random head) is where the run started: 4.0 → 7.5 is not yet divergence.
  t.deepEqual(diagnose([epoch(1, 7.5)], ctx({ initialLoss: 4 })), []);
  const [r] = diagnose([epoch(1, 1.0), epoch(2, 1.1), epoch(3, 1.2), epoch(4, 1.3)], ctx());
  t.is(r?.code, 'TRAINING_DIVERGING');
  t.regex(r!.message, /rose in each of the last 3 epochs \(1\.000 → 1\.100 → 1\.200 → 1\.300\)/);
  t.deepEqual(diagnose([epoch(1, 1.0), epoch(2, 1.1), epoch(3, 1.05), epoch(4, 1.3)], ctx()), [], 'one dip: not a trend');
  // SGD's drift in a run that learns (configs/parts-linear.yaml at base lr 1): up 9 %, not a fifth.
  t.deepEqual(diagnose([epoch(1, 1.033), epoch(2, 1.066), epoch(3, 1.078), epoch(4, 1.127)], ctx()), [], 'a small drift: not divergence');
});

test('collapsed: two epochs running with ≥ 95 % of predictions in one class that is not most of the data', (t) => {
  const all = [0, 0, 0, 0, 100];
  t.deepEqual(diagnose([epoch(1, 1.5), epoch(2, 1.5, all)], ctx()), [], 'one epoch may be a passing state');
  t.deepEqual(diagnose([epoch(1, 1.5, all), epoch(2, 1.5, all)], ctx({ warmupEpochs: 1 })), [], 'not judged on warmup epochs');
  t.is(diagnose([epoch(1, 1.5, all), epoch(2, 1.5, all), epoch(3, 1.5, all)], ctx({ warmupEpochs: 1 }))[0]?.code, 'TRAINING_COLLAPSED');
  const [w] = diagnose([epoch(1, 1.5, all), epoch(2, 1.5, all)], ctx());
  t.is(w?.code, 'TRAINING_COLLAPSED');
  t.regex(w!.message, /100\.0 % of validation images are predicted "stain"/);
  // Onto a class that is 96 % of the data, answering it is not a collapse.
  t.deepEqual(diagnose([epoch(1, 1.5, all), epoch(2, 1.5, all)], ctx({ valCounts: [1, 1, 1, 1, 96] })), []);
});

test('not learning: judged at the end of the run against always answering the commonest class; each code once', (t) => {
  const h = [epoch(1, 1.6), epoch(2, 1.58)];
  t.deepEqual(diagnose(h, ctx({ bestTop1: 0.212 })), [], 'not before the end');
  const [w] = diagnose(h, ctx({ bestTop1: 0.212, final: true }));
  t.is(w?.code, 'TRAINING_NOT_LEARNING');
  t.regex(w!.message, /best validation top-1 21\.2 % after 2 epoch\(s\) is no better than always answering the commonest class \(20\.0 %\)/);
  t.deepEqual(diagnose(h, ctx({ bestTop1: 0.212, final: true }), [w!]), [], 'already reported');
  t.deepEqual(diagnose(h, ctx({ bestTop1: 0.5, final: true })), []);
});

const dir = mkdtempSync(join(tmpdir(), 'ep-diag-'));
/** The fixture ViT on 3 Fashion-MNIST classes: learns at lr 0.2 (62.5 %), diverges at 100× that. */
function config(name: string, lr: number): string {
  const f = join(dir, `${name}.yaml`);
  writeFileSync(
    f,
    `name: ${name}
backbone: { arch: vit_fixture_patch8_32, weights: ${fixturePath('vit_fixture.safetensors')} }
data: { kind: fashion-mnist, classes: [5, 7, 9], limitPerClass: 16, valLimitPerClass: 8 }
method: { name: vpt-deep, options: { prompts: 2 } }
recipe: { epochs: 4, batchSize: 8, warmupEpochs: 1, optimizer: { lr: ${lr} } }
seed: 3
engine: ort
output: { dir: ${name}-out }
`,
  );
  return f;
}

async function trainLogged(file: string): Promise<{ lines: string[]; out: string; warnings: string[] }> {
  const lines: string[] = [];
  const progress = { ...makeProgress('none'), log: (m: string) => void lines.push(m) };
  const p = await prepareJob(loadCompileConfig(file), file, { resume: false, progress });
  const r = await train(p.job);
  return { lines, out: p.job.outDir, warnings: (r.state.warnings ?? []).map((w) => w.code) };
}

test('a real run: quiet at its learning rate; lr × 100 prints TRAINING_DIVERGING with cause and fix, also in report.html', async (t) => {
  t.timeout(120_000);
  const good = await trainLogged(config('learns', 0.2));
  t.deepEqual(good.warnings, [], good.lines.join('\n'));
  t.notRegex(readFileSync(join(good.out, 'report.html'), 'utf8'), /needs attention/);

  const bad = await trainLogged(config('diverges', 20));
  t.true(bad.warnings.includes('TRAINING_DIVERGING'), bad.lines.join('\n'));
  const line = bad.lines.find((l) => l.startsWith('warning [TRAINING_DIVERGING]'));
  t.truthy(line, bad.lines.join('\n'));
  t.regex(line!, /Likely cause: the learning rate is too high.*Fix: lower recipe\.optimizer\.lr \(now 20; try 2\)/);
  const html = readFileSync(join(bad.out, 'report.html'), 'utf8');
  t.regex(html, /This run needs attention/);
  t.regex(html, /TRAINING_DIVERGING/);
});

test('edgeprompt train --strict: the warning becomes an error, exit 2, one line, the checkpoint kept', async (t) => {
  t.timeout(120_000);
  const file = config('strict', 20);
  const e = await t.throwsAsync(run(process.execPath, [repoPath('tools/edgeprompt.mjs'), 'train', '-c', file, '--strict', '--progress', 'lines'], { cwd: repoPath('.') }));
  const err = e as Error & { code: number; stderr: string };
  t.is(err.code, 2);
  t.regex(err.stderr, /edgeprompt: error \[TRAINING_DIVERGING\]: epoch \d: mean training loss [\d.]+ is more than 2× .* \(--strict\)\. Likely cause: .* Fix: lower recipe\.optimizer\.lr/);
  t.notRegex(err.stderr, /\n\s+at /, 'no stack trace');
  t.truthy(readFileSync(join(dir, 'strict-out/checkpoint/state.json'), 'utf8'));
});
