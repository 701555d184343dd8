// `npm run demo` as a user runs it (a short line): the committed items and artifact, an in-process
// broker, the runtime on an ffmpeg video, and the subscriber's summary. Also the committed items'
// own checks: what `--per-class` may ask of them.

import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CompilerError } from '../compiler/ops/errors.ts';
import { readDemoItems } from '../cli/demo-video.ts';
import { repoPath } from './helpers/fixtures.ts';

const run = promisify(execFile);
const ITEMS = repoPath('configs/demo/line-items.png');

test('npm run demo: every frame of the sample video is reported over MQTT, with no sequence gaps', async (t) => {
  t.timeout(120_000);
  const { stdout } = await run(process.execPath, [repoPath('tools/edgeprompt.mjs'), 'demo', '--per-class', '3', '--fps', '15'], { cwd: repoPath('.'), maxBuffer: 1 << 24 });
  t.regex(stdout, /15 frames → out\/demo\/line\.mp4/);
  const frames = stdout.match(/frames from the camera (\d+), results (\d+) \(dropped by newest-frame-wins (\d+), seq gaps (\d+)\)/);
  t.truthy(frames, stdout);
  t.is(Number(frames![2]) + Number(frames![3]), 15, 'each frame either reported or counted as dropped');
  t.is(frames![4], '0');
  const acc = stdout.match(/accuracy against the known labels: (\d+)\/(\d+)/);
  t.truthy(acc, stdout);
  // The demo model's validation top-1 is 72.5 % (its manifest): far above the 20 % of guessing on 5 classes.
  t.true(Number(acc![1]) >= 0.5 * Number(acc![2]), acc![0]);
});

test('the committed line items: per-class picks keep the line order; asking for more than stored names the file and the fix', async (t) => {
  const a = await readDemoItems(ITEMS, 2);
  const b = await readDemoItems(ITEMS, 4);
  t.deepEqual(a.items.classes, ['sandal', 'shirt', 'sneaker', 'bag', 'ankle boot']);
  t.is(a.images.length, 10);
  t.is(a.images[0]!.length, 32 * 32 * 3);
  // The first two of each class in `b` are `a`, in the same order.
  const seen = new Array<number>(5).fill(0);
  const firstTwo = b.items.indices.filter((_, k) => seen[b.items.labels[k]!]!++ < 2);
  t.deepEqual(firstTwo, a.items.indices);
  const e = await t.throwsAsync(readDemoItems(ITEMS, 1000), { instanceOf: CompilerError });
  t.regex(e.message, /--per-class 1000: .*line-items\.png holds 24 items per class; .*npm run demo -- --rebuild --per-class 1000/);
});
