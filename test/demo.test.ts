// `npm run demo` as a user runs it (a short line): the committed items and artifact, an in-process
// broker, the runtime on an ffmpeg video, NG parts to the reject gate over a (mock) serial line, and
// the subscriber's summary. Then the same demo on an inspection line (issue 15 item 6): a demo line
// file pointing at parts items and an artifact with okLabels, whose summary reports escape and
// false-reject rates that must agree with the per-part lines. Also the line items' own checks.
// The demo runs are serial: each run owns out/demo/ (its video and outbox).

import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CompilerError } from '../compiler/ops/errors.ts';
import { readLineItems, writeLineItems } from '../cli/demo-items.ts';
import { generateKeyPair, publicKeyPem } from '../runtime/artifact/index.ts';
import { repoPath } from './helpers/fixtures.ts';
import { makeArtifact } from './helpers/runtime-models.ts';

const run = promisify(execFile);
const ITEMS = repoPath('configs/demo/line-items.png');
const demo = (...args: string[]) => run(process.execPath, [repoPath('tools/edgeprompt.mjs'), 'demo', ...args], { cwd: repoPath('.'), maxBuffer: 1 << 24 });

/** The gate's summary line, checked against the NG decisions printed per part. */
function checkGate(t: { is: (a: unknown, b: unknown, m?: string) => void; truthy: (a: unknown, m?: string) => void }, stdout: string): void {
  const ng = (stdout.match(/^ {2}# *\d+ frame +\d+ NG /gm) ?? []).length;
  const gate = stdout.match(/reject gate \(serial line, in-process mock port\): (\d+) parts diverted: (.*?), actuated (\d+)–(\d+) ms after capture \(configured 300 ms\)/);
  if (ng === 0) return;
  t.truthy(gate, stdout);
  t.is(Number(gate![1]), ng, 'one gate line per NG part');
  t.is(gate![2], 'every NG part, nothing else');
  t.is(Number(gate![3]) >= 300, true, `the gate never fires before its delay (${gate![0]})`);
}

test.serial('npm run demo: every frame of the sample video is reported over MQTT, with no sequence gaps; NG items go to the reject gate', async (t) => {
  t.timeout(120_000);
  const { stdout } = await demo('--per-class', '3', '--fps', '15');
  t.regex(stdout, /15 frames → out\/demo\/line\.mp4/);
  const frames = stdout.match(/frames from the camera (\d+), results (\d+) \(dropped by newest-frame-wins (\d+), seq gaps (\d+)\)/);
  t.truthy(frames, stdout);
  t.is(Number(frames![2]) + Number(frames![3]), 15, 'each frame either reported or counted as dropped');
  t.is(frames![4], '0');
  const acc = stdout.match(/accuracy against the known labels: (\d+)\/(\d+)/);
  t.truthy(acc, stdout);
  // The demo model's validation top-1 is 72.5 % (its manifest): far above the 20 % of guessing on 5 classes.
  t.true(Number(acc![1]) >= 0.5 * Number(acc![2]), acc![0]);
  checkGate(t, stdout);
});

test.serial('the demo on an inspection line: pass/fail per part, the reject gate, and escape / false-reject rates that match the parts', async (t) => {
  t.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'ep-demo-'));
  // Parts of a line (32 px, unseen indices) and a signed artifact that inspects them: the fixture ViT
  // with the parts labels. It puts most mass on output 4 (p 0.2–0.5 on these parts), so that output
  // is `ok` and minConfidence 0.33 splits the line into passes and fails: a weak inspector, which
  // is what the figures must expose.
  await writeLineItems(join(dir, 'items.png'), { kind: 'parts', part: 'plate', material: 'steel', seed: 0, firstIndex: 1000, size: 32, renderSize: 64, shuffleSeed: 7 }, 4);
  const labels = ['dent', 'missing_hole', 'scratch', 'stain', 'ok', 'other5', 'other6', 'other7', 'other8', 'other9'];
  const key = generateKeyPair();
  writeFileSync(join(dir, 'line.pub'), publicKeyPem(key.publicKey));
  writeFileSync(join(dir, 'parts.epk'), makeArtifact({ name: 'parts-inspector', labels, thresholds: { okLabels: ['ok'], minConfidence: 0.33 } }, { privateKey: key.privateKey }).bytes);
  writeFileSync(
    join(dir, 'demo.yaml'),
    `title: a test inspection line
compile: ${repoPath('configs/parts-vpt-deep.yaml')}
artifact: parts.epk
publicKey: line.pub
items: { sheet: items.png, source: { kind: parts, part: plate, material: steel, seed: 0, firstIndex: 1000, size: 32, renderSize: 64 }, stored: 4 }
camera: { fps: 15, upscale: 2 }
rejectGate: { delayMs: 300 }
`,
  );
  const { stdout } = await demo('--line', join(dir, 'demo.yaml'), '--per-class', '4');
  t.regex(stdout, /pass when the top label is one of \[ok\] and p\(ok\) ≥ 0\.33/);
  const parts = [...stdout.matchAll(/^ {2}# *\d+ frame +\d+ (OK|NG) \S+ +p\(ok\) +[\d.]+ % (✓ passed|✗ ESCAPE|✗ false reject|✓ caught) +\(truth (\w+)\)/gm)];
  t.is(parts.length, 20, stdout);
  for (const [, decision, verdict, truth] of parts) {
    t.is(decision === 'OK', verdict!.includes('passed') || verdict!.includes('ESCAPE'));
    t.is(truth === 'ok', verdict!.includes('passed') || verdict!.includes('false reject'));
  }
  const count = (v: string) => parts.filter((p) => p[2]!.includes(v)).length;
  const esc = stdout.match(/escape rate +([\d.]+) % +\((\d+) of (\d+) defective parts passed as OK/);
  const frr = stdout.match(/false-reject rate +([\d.]+) % +\((\d+) of (\d+) good parts failed/);
  t.truthy(esc, stdout);
  t.truthy(frr, stdout);
  t.deepEqual([Number(esc![2]), Number(esc![3])], [count('ESCAPE'), 16]);
  t.deepEqual([Number(frr![2]), Number(frr![3])], [count('false reject'), 4]);
  t.is(esc![1], ((100 * count('ESCAPE')) / 16).toFixed(1));
  t.regex(stdout, /AUROC defect-vs-ok +[01]\.\d{3}/);
  t.regex(stdout, /per class \(recall: the top label right; failed: sent to the reject gate\)\n +class +parts +recall +failed\n +ok +4 +\d+ % +\d+ %\n +dent +4 +\d+ % +\d+ %\n +missing_hole +4 /);
  t.regex(stdout, /(the strictest threshold holding false rejects ≤ 10 % here: minConfidence [\d.]+ → escape [\d.]+ %|no threshold holds false rejects ≤ 10 % here)/);
  checkGate(t, stdout);
});

test.serial('a demo line naming a reject-gate line without the frame id, or items the artifact does not know, is refused in one line', async (t) => {
  t.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'ep-demo-bad-'));
  writeFileSync(join(dir, 'demo.yaml'), `title: x\ncompile: a.yaml\nartifact: a.epk\npublicKey: a.pub\nitems: { sheet: a.png, source: { kind: fashion-mnist, classes: [5, 6], skipPerClass: 0, seed: 1 } }\nrejectGate: { line: 'REJECT now' }\n`);
  const e = (await t.throwsAsync(demo('--line', join(dir, 'demo.yaml')))) as Error & { code: number; stderr: string };
  t.is(e.code, 2);
  t.regex(e.stderr, /demo\.yaml: invalid demo line: rejectGate\.line: must be printable ASCII ending with " \{frameId\}" \(got "REJECT now"\)\n$/);
  // The committed garments in front of a model that knows class0 … class9.
  const key = generateKeyPair();
  writeFileSync(join(dir, 'k.pub'), publicKeyPem(key.publicKey));
  writeFileSync(join(dir, 'm.epk'), makeArtifact({}, { privateKey: key.privateKey }).bytes);
  writeFileSync(join(dir, 'other.yaml'), `title: x\ncompile: a.yaml\nartifact: m.epk\npublicKey: k.pub\nitems: { sheet: ${ITEMS}, source: { kind: fashion-mnist, classes: [5, 6], skipPerClass: 0, seed: 1 } }\n`);
  const u = (await t.throwsAsync(demo('--line', join(dir, 'other.yaml'), '--per-class', '1'))) as Error & { code: number; stderr: string };
  t.is(u.code, 2);
  t.regex(u.stderr, /other\.yaml: the items \(.*line-items\.png\) hold classes the artifact m\.epk does not know \(sandal, .*; it knows class0, .*\); run `npm run demo -- --rebuild`/);
});

test('the committed line items: per-class picks keep the line order; asking for more than stored names the file and the fix', async (t) => {
  const a = await readLineItems(ITEMS, 2);
  const b = await readLineItems(ITEMS, 4);
  t.deepEqual(a.items.classes, ['sandal', 'shirt', 'sneaker', 'bag', 'ankle boot']);
  t.is(a.images.length, 10);
  t.is(a.images[0]!.length, 32 * 32 * 3);
  // The first two of each class in `b` are `a`, in the same order.
  const seen = new Array<number>(5).fill(0);
  const firstTwo = b.items.indices.filter((_, k) => seen[b.items.labels[k]!]!++ < 2);
  t.deepEqual(firstTwo, a.items.indices);
  const e = await t.throwsAsync(readLineItems(ITEMS, 1000), { instanceOf: CompilerError });
  t.regex(e.message, /--per-class 1000: .*line-items\.png holds 24 items per class; .*npm run demo -- --rebuild --per-class 1000/);
});

test('parts items round-trip through the sheet in colour, and are drawn past the given index', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ep-items-'));
  const png = join(dir, 'items.png');
  const meta = await writeLineItems(png, { kind: 'parts', part: 'bracket', material: 'steel', seed: 3, firstIndex: 500, size: 24, shuffleSeed: 1 }, 2);
  t.deepEqual(meta.classes, ['ok', 'scratch', 'dent', 'missing_hole', 'stain']);
  t.true(meta.indices.every((i) => i === 500 || i === 501));
  const { images } = await readLineItems(png, 2);
  t.is(images.length, 10);
  const { renderPart } = await import('../compiler/data/parts.ts');
  const first = await renderPart(3, meta.classes[meta.labels[0]!]! as 'ok', meta.indices[0]!, 24, { part: 'bracket', material: 'steel' });
  t.deepEqual(images[0], first, 'lossless PNG: the tile is the rendered part, byte for byte');
});
