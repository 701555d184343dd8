/**
 * `edgeprompt compile` end to end as a user runs it (real processes, real files): train a tiny
 * task, export, verify, optimise, sign; then `verify`, `inspect`, and the refusals.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readArtifact } from '../runtime/artifact/index.ts';
import { fixturePath, repoPath } from './helpers/fixtures.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'ep-compile-'));
async function edgeprompt(...args: string[]) {
  try {
    const r = await run(process.execPath, [repoPath('tools/edgeprompt.mjs'), ...args], { timeout: 170_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout + x.stderr };
  }
}
const config = join(dir, 'tiny.yaml');
writeFileSync(
  config,
  `name: tiny-parts
backbone: { arch: vit_fixture_patch8_32, weights: ${fixturePath('vit_fixture.safetensors')} }
data: { kind: parts, perClass: 8, size: 32, seed: 1, valFraction: 0.25 }
method: { name: vpt-deep, options: { prompts: 2 } }
recipe: { epochs: 1, batchSize: 8, warmupEpochs: 0 }
thresholds: { okLabels: [ok], minConfidence: 0.6 }
gates: { minTop1: 0 }   # one epoch on 40 images: what is checked here is the pipeline, not the accuracy
output: { dir: out }
`,
);

test.serial('keys new → compile --sign → verify → inspect', async (t) => {
  const k = await edgeprompt('keys', 'new', '--out', join(dir, 'line1'));
  t.is(k.code, 0, k.out);
  t.regex(k.out, /key id [0-9a-f]{16}/);
  const again = await edgeprompt('keys', 'new', '--out', join(dir, 'line1'));
  t.is(again.code, 2);
  t.regex(again.out, /KEY_EXISTS.*refusing to overwrite/);

  const epk = join(dir, 'tiny.epk');
  const c = await edgeprompt('compile', '-c', config, '--out', epk, '--sign', join(dir, 'line1.key'), '--target', 'x86-cpu', '--release', '4', '--progress', 'lines');
  t.is(c.code, 0, c.out);
  t.regex(c.out, /\| fp32 \| [\d.]+ % \| [\d.e+-]+ \| [\d.]+ MB \| yes \|/);
  t.regex(c.out, /signed by key [0-9a-f]{16}/);
  const a = readArtifact(readFileSync(epk), epk);
  t.is(a.manifest.precision, 'fp32');
  t.is(a.manifest.target, 'x86-cpu');
  t.is(a.manifest.release, 4, '--release reaches the manifest (devices compare it: docs/deploy.md)');
  t.deepEqual(a.manifest.labels, ['dent', 'missing_hole', 'ok', 'scratch', 'stain']);
  t.deepEqual(a.manifest.thresholds, { okLabels: ['ok'], minConfidence: 0.6 });
  t.true(a.manifest.metrics.fp32!.maxLogitDiff <= 1e-4);
  // An inspection model (okLabels): the validation figures a quality engineer reads, per precision.
  const m = a.manifest.metrics.fp32!;
  for (const k of ['escapeRate', 'falseRejectRate', 'aurocDefectVsOk'] as const) t.true(typeof m[k] === 'number' && m[k] >= 0 && m[k] <= 1, `${k} = ${m[k]}`);
  t.regex(c.out, /epoch 1: .* val top-1 [\d.]+ %, escape [\d.]+ %, false reject [\d.]+ %, AUROC [\d.]+/);
  t.regex(c.out, /inspection on the validation set \(fp32, okLabels ok, minConfidence 0\.6\); escape [\d.]+ %, false reject [\d.]+ % at the manifest threshold, AUROC defect-vs-ok [\d.]+/);

  const v = await edgeprompt('verify', epk, '--pub', join(dir, 'line1.pub'));
  t.is(v.code, 0, v.out);
  t.regex(v.out, /OK — tiny-parts 1\.0\.0, signed by key/);
  await edgeprompt('keys', 'new', '--out', join(dir, 'other'));
  const wrong = await edgeprompt('verify', epk, '--pub', join(dir, 'other.pub'));
  t.is(wrong.code, 2);
  t.regex(wrong.out, /SIGNATURE_UNKNOWN_KEY/);

  const tampered = join(dir, 'tampered.epk');
  const bytes = readFileSync(epk);
  const at = bytes.indexOf(Buffer.from('edgeprompt.method')) + 4;
  bytes[at] = bytes[at]! ^ 1;
  writeFileSync(tampered, bytes);
  const tv = await edgeprompt('verify', tampered, '--pub', join(dir, 'line1.pub'));
  t.is(tv.code, 2);
  t.regex(tv.out, /MODEL_DIGEST_MISMATCH/);

  const i = await edgeprompt('inspect', epk);
  t.is(i.code, 0, i.out);
  t.regex(i.out, /tiny-parts 1\.0\.0 \(release 4\)/);
  t.regex(i.out, /input: image uint8 NHWC 32×32×3/);
  t.regex(i.out, /fp32: top-1 [\d.]+ %, max \|Δlogit\|.*; escape [\d.]+ %, false reject [\d.]+ % at the manifest threshold/);
  t.regex(i.out, /graph: \d+ nodes/);
});

test.serial('a second compile reuses the finished checkpoint; an unknown precision is refused', async (t) => {
  const bad = await edgeprompt('compile', '-c', config, '--out', join(dir, 'x.epk'), '--precision', 'fp8');
  t.is(bad.code, 2);
  t.regex(bad.out, /--precision: unknown precision "fp8"; choose from fp32, fp16, int8/);
  const typo = await edgeprompt('compile', '-c', config, '--out', join(dir, 'x.epk'), '--set', 'thresholds.okLabels=[good]');
  t.is(typo.code, 2);
  t.regex(typo.out, /tiny\.yaml: invalid compile config: thresholds\.okLabels\[0\]: "good" is not a class of the data \(classes: dent, missing_hole, ok, scratch, stain\)/);
  const c = await edgeprompt('compile', '-c', config, '--out', join(dir, 'again.epk'), '--progress', 'lines');
  t.is(c.code, 0, c.out);
  t.regex(c.out, /using the finished run in .*out \(its 1 epoch, best validation top-1 [\d.]+ % at epoch 1\)/);
  t.notRegex(c.out, /epoch 1: train loss/); // nothing retrained
  t.regex(c.out, /UNSIGNED: devices with trusted keys will refuse it/);
});

test.serial('fp16 and int8 are built, measured on the validation set, gated, and recorded in the manifest', async (t) => {
  const epk = join(dir, 'multi.epk');
  const c = await edgeprompt('compile', '-c', config, '--out', epk, '--precision', 'fp32,fp16,int8', '--max-drop', '100', '--target', 'x86-cpu', '--progress', 'lines');
  t.is(c.code, 0, c.out);
  for (const p of ['fp32', 'fp16', 'int8']) t.regex(c.out, new RegExp(`\\| ${p} \\| [\\d.]+ % \\| [\\d.e+-]+ \\| [\\d.]+ MB \\|`));
  const a = readArtifact(readFileSync(epk), epk);
  t.deepEqual(Object.keys(a.manifest.metrics).sort(), ['fp16', 'fp32', 'int8']);
  t.true(a.manifest.metrics.fp16!.maxLogitDiff < 0.1);
  const sizes = Object.fromEntries([...c.out.matchAll(/\| (fp32|fp16|int8) \| [\d.]+ % \| [\d.e+-]+ \| ([\d.]+) MB/g)].map((m) => [m[1], Number(m[2])]));
  t.true(sizes.int8! < sizes.fp32! / 2, JSON.stringify(sizes));
  const strict = await edgeprompt('compile', '-c', config, '--out', join(dir, 'strict.epk'), '--precision', 'int8', '--max-drop', '0', '--progress', 'lines', '--set', 'thresholds.minConfidence=0.5');
  if (strict.code !== 0) t.regex(strict.out, /no requested precision passed the accuracy gate: int8 refused: validation top-1/);
  else t.regex(strict.out, /\| int8 \| .* \| yes \|/);
});
