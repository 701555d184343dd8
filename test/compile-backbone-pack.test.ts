/**
 * `edgeprompt compile --form shared` end to end as a user runs it (real processes, real files):
 * a signed shared backbone and prompt pack from a tiny task, equal to the fused artifact compiled
 * from the same checkpoint; a second task built as a pack only, for the existing backbone; and
 * `inspect` / `verify` on packs, with the refusals.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makePartsSet } from '../compiler/data/parts.ts';
import { maxAbsDiff } from '../compiler/ops/host-tensor.ts';
import { readArtifact, readModelArtifact, readPromptPack, type BackboneArtifact } from '../runtime/artifact/index.ts';
import { BackboneSession, ModelSession } from '../runtime/session/index.ts';
import { fixturePath, repoPath } from './helpers/fixtures.ts';
import { cpuProfile } from './helpers/runtime-models.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'ep-compile-backbone-pack-'));
async function edgeprompt(...args: string[]) {
  try {
    const r = await run(process.execPath, [repoPath('tools/edgeprompt.mjs'), ...args], { timeout: 170_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout + x.stderr };
  }
}
const config = (name: string, seed: number, prompts = 2) => {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}
backbone: { arch: vit_fixture_patch8_32, weights: ${fixturePath('vit_fixture.safetensors')} }
data: { kind: parts, perClass: 8, size: 32, seed: ${seed}, valFraction: 0.25 }
method: { name: vpt-deep, options: { prompts: ${prompts} } }
recipe: { epochs: 1, batchSize: 8, warmupEpochs: 0 }
thresholds: { okLabels: [ok], minConfidence: 0.6 }
gates: { minTop1: 0 }
output: { dir: out-${name} }
`,
  );
  return file;
};
const p = (f: string) => join(dir, f);

test.serial('compile --form shared: backbone + pack, signed, with the fused artifact\'s logits on real images', async (t) => {
  t.is((await edgeprompt('keys', 'new', '--out', p('line1'))).code, 0);
  const cfg = config('task-a', 1);
  const c = await edgeprompt('compile', '-c', cfg, '--form', 'shared', '--out', p('backbone.epk'), '--pack', p('a.epp'), '--sign', p('line1.key'), '--progress', 'lines');
  t.is(c.code, 0, c.out);
  t.regex(c.out, /task-a 1\.0\.0: vpt-deep on vit_fixture_patch8_32, 5 labels, as a prompt pack for shared backbone vit_fixture_patch8_32-vpt-deep-shared/);
  t.regex(c.out, /\| fp32 \| [\d.]+ % \| [\d.e+-]+ \| [\d.]+ MB \| yes \|/);
  t.regex(c.out, /wrote .*backbone\.epk \([\d.]+ MB, shared backbone, fp32, ORT-optimised (yes|no), signed by key [0-9a-f]{16}\)/);
  t.regex(c.out, /wrote .*a\.epp \([\d.]+ kB, prompt pack, signed by key [0-9a-f]{16}\)/);
  const f = await edgeprompt('compile', '-c', cfg, '--out', p('fused.epk'), '--progress', 'lines');
  t.is(f.code, 0, f.out);
  t.notRegex(f.out, /epoch 1: train loss/, 'the same checkpoint');

  const bb = readModelArtifact(readFileSync(p('backbone.epk')), 'backbone.epk') as BackboneArtifact;
  const pack = readPromptPack(readFileSync(p('a.epp')), 'a.epp');
  t.is(pack.manifest.backbone.model, bb.manifest.model.sha256);
  t.true(pack.manifest.metrics.fp32!.maxLogitDiff <= 1e-4);
  t.true(pack.bytes < bb.bytes / 20, `a pack is small: ${pack.bytes} B vs ${bb.bytes} B`);
  const fusedArtifact = readArtifact(readFileSync(p('fused.epk')), 'fused.epk');
  t.deepEqual(pack.manifest.labels, fusedArtifact.manifest.labels);
  t.is(pack.manifest.prompts.sha256, fusedArtifact.manifest.prompts.sha256, 'the same trained tensors');

  const fused = await ModelSession.create(fusedArtifact, { profile: cpuProfile() });
  const shared = await BackboneSession.create(bb, pack, { profile: cpuProfile() });
  t.teardown(async () => void (await Promise.all([fused.release(), shared.release()])));
  const task = shared.bind(pack);
  const images = (await makePartsSet({ perClass: 6, size: 32, seed: 77 })).samples.map((s) => s.image);
  let d = 0;
  for (let i = 0; i < images.length; i += 4) {
    const [a, b] = [await fused.run(images.slice(i, i + 4), 1), await task.run(images.slice(i, i + 4), 1)];
    a.predictions.forEach((x, j) => {
      d = Math.max(d, maxAbsDiff(x.logits, b.predictions[j]!.logits));
      t.is(x.label, b.predictions[j]!.label);
    });
  }
  t.log(`fused vs backbone + pack on ${images.length} images: max |Δlogit| ${d.toExponential(2)}`);
  t.true(d <= 1e-4, `${d}`);

  const ip = await edgeprompt('inspect', p('a.epp'));
  t.is(ip.code, 0, ip.out);
  t.regex(ip.out, /task-a 1\.0\.0 \(release 0\) — PROMPT PACK, vpt-deep/);
  t.regex(ip.out, new RegExp(`fits the shared backbone whose model\\.onnx has sha256 ${bb.manifest.model.sha256}`));
  t.regex(ip.out, /tensors: 8 \(\d+ float32 values\): blocks\.0\.attn\.prompt_k \[3, 2, 32\]/);
  const ib = await edgeprompt('inspect', p('backbone.epk'));
  t.is(ib.code, 0, ib.out);
  t.regex(ib.out, /SHARED BACKBONE for vpt-deep .* runs only with a prompt pack/);
  t.regex(ib.out, /pack inputs: .*head\.weight \[classes, 96\], head\.bias \[classes\]/);
  const v = await edgeprompt('verify', p('a.epp'), '--pub', p('line1.pub'), '--backbone', p('backbone.epk'));
  t.is(v.code, 0, v.out);
  t.regex(v.out, /a\.epp: OK — prompt pack task-a 1\.0\.0, signed by key [0-9a-f]{16} .* fits .*backbone\.epk/);
  const wrong = await edgeprompt('verify', p('a.epp'), '--pub', p('line1.pub'), '--backbone', p('fused.epk'));
  t.is(wrong.code, 2);
  t.regex(wrong.out, /--backbone .*fused\.epk: is a fused artifact, not a shared backbone/);
});

test.serial('a task update is a pack only: built, measured and signed for the existing backbone; a config of another shape is refused before training', async (t) => {
  const c = await edgeprompt('compile', '-c', config('task-b', 2), '--form', 'shared', '--backbone', p('backbone.epk'), '--pack', p('b.epp'), '--sign', p('line1.key'), '--progress', 'lines');
  t.is(c.code, 0, c.out);
  t.regex(c.out, /measuring the pack on .*backbone\.epk \(fp32\)/);
  t.notRegex(c.out, /wrote .*\.epk/, 'no backbone written');
  const bb = readModelArtifact(readFileSync(p('backbone.epk'))) as BackboneArtifact;
  const b = readPromptPack(readFileSync(p('b.epp')), 'b.epp');
  t.is(b.manifest.backbone.model, bb.manifest.model.sha256);
  t.is(b.manifest.name, 'task-b');
  t.true(b.manifest.metrics.fp32!.maxLogitDiff <= 1e-4);
  const v = await edgeprompt('verify', p('b.epp'), '--pub', p('line1.pub'), '--backbone', p('backbone.epk'));
  t.is(v.code, 0, v.out);

  const other = await edgeprompt('compile', '-c', config('task-c', 3, 3), '--form', 'shared', '--backbone', p('backbone.epk'), '--pack', p('c.epp'), '--progress', 'lines');
  t.is(other.code, 2);
  t.regex(other.out, /CONFIG_INVALID.*this config is not a task of that backbone: method\.options are \{"prompts":3,.*\}, the backbone's \{"prompts":2,/);
  t.notRegex(other.out, /epoch 1/, 'refused before training');
  t.false(existsSync(p('c.epp')));
  const notBackbone = await edgeprompt('compile', '-c', config('task-d', 4), '--form', 'shared', '--backbone', p('fused.epk'), '--pack', p('d.epp'));
  t.is(notBackbone.code, 2);
  t.regex(notBackbone.out, /--backbone .*fused\.epk: is a fused artifact; a prompt pack needs a shared-backbone artifact/);
});

test('compile flags that cannot work are refused before anything runs', async (t) => {
  const cfg = config('task-e', 5);
  for (const [args, msg] of [
    [['--out', p('x.epk'), '--pack', p('x.epp')], /--pack needs --form shared/],
    [['--form', 'shared', '--out', p('x.epk')], /--pack: required with --form shared/],
    [['--form', 'shared', '--pack', p('x.epp')], /--out: required with --form shared unless --backbone/],
    [['--form', 'both', '--out', p('x.epk')], /--form: unknown form "both"; choose fused or shared/],
    [[], /--out: required/],
  ] as const) {
    const r = await edgeprompt('compile', '-c', cfg, ...args);
    t.is(r.code, 2, r.out);
    t.regex(r.out, msg);
    t.notRegex(r.out, /epoch/);
  }
});
