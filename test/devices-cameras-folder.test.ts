// Image-folder replay with real images written by sharp.

import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FolderSource } from '../devices/cameras/folder.ts';
import type { EndInfo, Frame } from '../devices/cameras/frame.ts';
import { takeFrames } from '../devices/cameras/take.ts';
import { makeImage, maxColourError, pixel, tempDir } from './helpers/media.ts';

const RED: [number, number, number] = [220, 30, 30];
const GREEN: [number, number, number] = [30, 200, 60];
const BLUE: [number, number, number] = [20, 40, 230];

let root = '';
let cleanup = async (): Promise<void> => {};

test.before(async () => {
  ({ dir: root, cleanup } = await tempDir('ep-folder-'));
  const bench = join(root, 'bench');
  await makeImage(join(bench, 'c.png'), BLUE, 40, 20);
  await makeImage(join(bench, 'ng', 'b.png'), RED);
  await makeImage(join(bench, 'ng', 'd.webp'), RED, 10, 10);
  await writeFile(join(bench, 'ng', 'broken.png'), 'not a png');
  await makeImage(join(bench, 'ok', 'a.jpg'), GREEN, 64, 48);
  await writeFile(join(bench, 'notes.txt'), 'ignored');
  await mkdir(join(root, 'empty'));
});
test.after.always(() => cleanup());

async function drain(src: FolderSource): Promise<{ frames: Frame[]; end: EndInfo }> {
  const frames: Frame[] = [];
  src.on('frame', (f) => frames.push(f));
  const ended = new Promise<EndInfo>((r) => src.once('end', r));
  await src.start();
  return { frames, end: await ended };
}

test('png, jpg and webp are decoded to W×H×3 in path order, labelled by their folder; broken files are skipped and noted', async (t) => {
  const src = new FolderSource({ camera: 'bench', format: { width: 16, height: 16, channels: 3 }, path: join(root, 'bench') });
  const { frames, end } = await drain(src);
  t.is(end.reason, 'eof');
  t.deepEqual(frames.map((f) => f.file), ['c.png', 'ng/b.png', 'ng/d.webp', 'ok/a.jpg']);
  t.deepEqual(frames.map((f) => f.label), [undefined, 'ng', 'ng', 'ok']);
  t.deepEqual(frames.map((f) => f.frameId), [1, 2, 3, 4]);
  for (const f of frames) t.is(f.data.length, 16 * 16 * 3);
  t.is(maxColourError(frames[0]!, BLUE), 0);
  t.is(maxColourError(frames[1]!, RED), 0);
  t.is(maxColourError(frames[2]!, RED), 0);
  t.true(maxColourError(frames[3]!, GREEN) <= 3, `jpeg ${pixel(frames[3]!, 0, 0)}`);
  t.true(src.diagnostics().some((l) => l.startsWith('skipped ng/broken.png')), src.diagnostics().join('\n'));
});

test('RGBA frames carry an opaque alpha channel', async (t) => {
  const src = new FolderSource({ camera: 'bench', format: { width: 4, height: 4, channels: 4 }, path: join(root, 'bench') });
  const { frames } = await drain(src);
  t.deepEqual(pixel(frames[0]!, 1, 1), [...BLUE, 255]);
});

test('loop replays the folder at the configured fps until stopped', async (t) => {
  const src = new FolderSource({ camera: 'bench', format: { width: 8, height: 8, channels: 3 }, path: join(root, 'bench'), loop: true, fps: 50 });
  t.false(src.finite);
  const t0 = Date.now();
  await src.start();
  const frames = await takeFrames(src, 9, 5000);
  const took = Date.now() - t0;
  await src.stop();
  t.is(src.state, 'stopped');
  t.deepEqual(frames.map((f) => f.file), ['c.png', 'ng/b.png', 'ng/d.webp', 'ok/a.jpg', 'c.png', 'ng/b.png', 'ng/d.webp', 'ok/a.jpg', 'c.png']);
  t.true(took >= 150, `9 frames at 50 fps took ${took} ms`);
});

test('an empty folder ends the run with E_EMPTY_FOLDER; a missing one with E_FOLDER', async (t) => {
  const empty = await drain(new FolderSource({ camera: 'e', format: { width: 8, height: 8, channels: 3 }, path: join(root, 'empty') }));
  t.is(empty.end.reason, 'crashed');
  t.is(empty.end.error?.code, 'E_EMPTY_FOLDER');
  const missing = await drain(new FolderSource({ camera: 'm', format: { width: 8, height: 8, channels: 3 }, path: join(root, 'nope') }));
  t.is(missing.end.reason, 'crashed');
  t.is(missing.end.error?.code, 'E_FOLDER');
  t.regex(missing.end.error!.message, /nope/);
});

test('center-crop keeps the middle of a wide image, stretch squeezes it', async (t) => {
  const wide = join(root, 'wide');
  // 60×20: the left sixth blue, the rest red. A centre square crop (20×20 from x=20) is all red.
  const sharp = (await import('sharp')).default;
  await mkdir(wide);
  const px = Buffer.alloc(60 * 20 * 3);
  for (let i = 0; i < 60 * 20; i++) px.set((i % 60) < 10 ? BLUE : RED, i * 3);
  await sharp(px, { raw: { width: 60, height: 20, channels: 3 } }).png().toFile(join(wide, 'w.png'));
  const crop = (await drain(new FolderSource({ camera: 'w', format: { width: 10, height: 10, channels: 3 }, path: wide, resize: 'center-crop' }))).frames[0]!;
  t.is(maxColourError(crop, RED), 0);
  const stretch = (await drain(new FolderSource({ camera: 'w', format: { width: 12, height: 10, channels: 3 }, path: wide }))).frames[0]!;
  // sharp's lanczos3 overshoots a little next to the edge.
  const near = (got: number[], want: number[]): boolean => got.every((v, i) => Math.abs(v - want[i]!) <= 6);
  t.true(near(pixel(stretch, 0, 5), BLUE), `${pixel(stretch, 0, 5)}`);
  t.true(near(pixel(stretch, 11, 5), RED), `${pixel(stretch, 11, 5)}`);
});
