/**
 * `edgeprompt compile --zero-shot`: classes defined by words, no training, no images needed
 * (compiler/export/compile-zero-shot.ts). The backbone defaults to the shipped tiny CLIP.
 */
import { writeFileSync } from 'node:fs';
import { CompilerError } from '../compiler/ops/errors.ts';
import { compileZeroShot } from '../compiler/export/compile-zero-shot.ts';
import { SHIPPED_CLIP } from '../compiler/backbones/shipped-clip.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import type { Precision } from '../runtime/artifact/index.ts';
import type { PrecisionResult } from '../compiler/export/compile.ts';

export interface ZeroShotFlags {
  out?: string;
  classes?: string;
  templates?: string[];
  weights?: string;
  arch?: string;
  tokenizer?: string;
  source?: string;
  name?: string;
  taskVersion: string;
  ok?: string;
  minConfidence: number;
  val?: string;
  target?: string;
  precision: Precision[];
  maxDrop: number;
  sign?: string;
  progress: 'auto' | 'bar' | 'lines' | 'none';
}

const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);

export async function zeroShotCommand(f: ZeroShotFlags, print: (results: readonly PrecisionResult[], shipped: Precision) => void, signedBy: (ids: readonly string[]) => string): Promise<void> {
  // None of the three: the shipped tiny CLIP. Some of them: the user means other weights, so all three.
  if (!f.weights && !f.arch && !f.tokenizer) f = { ...f, weights: SHIPPED_CLIP.weights, arch: SHIPPED_CLIP.arch, tokenizer: SHIPPED_CLIP.tokenizer };
  if (!f.out) throw new CompilerError('FLAG_INVALID', '--out: required (the artifact to write, .epk)');
  if (f.classes === undefined) throw new CompilerError('FLAG_INVALID', '--classes: required with --zero-shot, e.g. --classes "ok,scratch,dent"');
  const classes = list(f.classes);
  if (classes.length < 2) throw new CompilerError('FLAG_INVALID', `--classes: ${classes.length ? `one class ("${classes[0]}") cannot be classified` : 'the class list is empty'}; give at least two, comma-separated`);
  const okLabels = f.ok === undefined ? undefined : list(f.ok);
  for (const l of okLabels ?? []) if (!classes.includes(l)) throw new CompilerError('FLAG_INVALID', `--ok: "${l}" is not one of --classes (${classes.join(', ')})`);
  const missing = (['weights', 'arch', 'tokenizer'] as const).filter((k) => !f[k]);
  if (missing.length) throw new CompilerError('FLAG_INVALID', `${missing.map((k) => `--${k}`).join(', ')}: required with --zero-shot when any of --weights, --arch, --tokenizer is given (the CLIP weights, their arch and their tokenizer.json; give none for the shipped tiny CLIP)`);
  const progress = makeProgress(f.progress);
  const r = await compileZeroShot({
    classes, arch: f.arch!, weights: f.weights!, tokenizer: f.tokenizer!, name: f.name ?? 'zero-shot', version: f.taskVersion, minConfidence: f.minConfidence,
    precisions: f.precision, maxDropPt: f.maxDrop, progress,
    ...(f.templates?.length ? { templates: f.templates } : {}), ...(f.source ? { source: f.source } : {}), ...(okLabels ? { okLabels } : {}),
    ...(f.val ? { val: f.val } : {}), ...(f.target ? { target: f.target } : {}), ...(f.sign ? { signKey: f.sign } : {}),
  });
  writeFileSync(f.out, r.artifact);
  const m = r.manifest;
  console.log(`\n${m.name} ${m.version}: zero-shot on ${m.backbone.arch}, ${m.labels.length} labels (${m.labels.join(', ')}), templates ${JSON.stringify((m.method.options as { templates: string[] }).templates)}`);
  if (f.val) print(r.results, m.precision);
  else for (const x of r.results) console.log(`${x.precision}: top-1 not measured (no labelled images; --val <folder> measures it), agrees with fp32 on ${(100 * x.verification.top1Exported).toFixed(1)} % of ${x.verification.images} check images, max |Δlogit| ${x.verification.maxAbsDiff.toExponential(2)}${x.precision === m.precision ? ', shipped' : x.accepted ? '' : `, ${x.reason}`}`);
  console.log(`wrote ${f.out} (${(r.artifact.length / 1e6).toFixed(2)} MB, ${m.precision}, ORT-optimised ${r.optimized ? 'yes' : 'no'}, ${signedBy(r.keyIds)})`);
}
