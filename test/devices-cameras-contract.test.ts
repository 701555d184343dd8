// The FrameSource contract (devices/cameras/frame.ts), one suite run against all four sources
// (house rule 5): ffmpeg (a real video file), GStreamer (real gst-launch), an image folder (real
// images by sharp) and the synthetic camera. Each rig says how to make a finite run of FINITE
// frames, an endless run, and a camera that is not there; the suite checks what every consumer
// (pipeline, watchdog) relies on. What only one source does stays in its own test file.

import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { FfmpegSource } from '../devices/cameras/ffmpeg.ts';
import { FolderSource } from '../devices/cameras/folder.ts';
import type { CameraState, EndInfo, Frame, FrameFormat, FrameSource } from '../devices/cameras/frame.ts';
import { GstreamerSource } from '../devices/cameras/gstreamer.ts';
import { classColour, SyntheticSource } from '../devices/cameras/synthetic.ts';
import { makeImage, makeVideo, maxColourError, solidGraph, tempDir } from './helpers/media.ts';

type RGB = readonly [number, number, number];
const FINITE = 5;
const TEAL: RGB = [40, 160, 200];

interface Rig {
  /** Exactly FINITE frames of `colour`, then eof. */
  finite(format: FrameFormat): FrameSource;
  /** Frames of `colour` until stopped. */
  endless(format: FrameFormat): FrameSource;
  /** A camera that is not there: start() resolves and the run ends 'crashed'. */
  missing(format: FrameFormat): FrameSource;
  colour: RGB;
  /** Colour tolerance per channel (decoders round through YUV). */
  tol: number;
}

let dir = '';
let cleanup = async (): Promise<void> => {};
let video = '';
let images = '';

test.before(async () => {
  ({ dir, cleanup } = await tempDir('ep-frame-contract-'));
  // 0.5 s at 10 fps: FINITE frames; ffv1 keeps the colour exact.
  video = await makeVideo(dir, { graph: solidGraph(TEAL, 48, 32, 10), seconds: FINITE / 10, codec: 'ffv1', name: 'teal.mkv' });
  images = join(dir, 'images');
  for (let i = 0; i < FINITE; i++) await makeImage(join(images, `cls${i % 2}`, `${i}.png`), TEAL, 30 + i, 20);
});
test.after.always(() => cleanup());

const synthColour = classColour(7, 0);
const rigs: Record<string, () => Rig> = {
  ffmpeg: () => ({
    finite: (format) => new FfmpegSource({ camera: 'cam', format, input: { kind: 'file', path: video } }),
    endless: (format) => new FfmpegSource({ camera: 'cam', format, input: { kind: 'file', path: video, loop: true, realtime: true } }),
    missing: (format) => new FfmpegSource({ camera: 'cam', format, input: { kind: 'file', path: join(dir, 'no-such.mkv') } }),
    colour: TEAL,
    tol: 2,
  }),
  gstreamer: () => ({
    finite: (format) => new GstreamerSource({ camera: 'cam', format, pipeline: `videotestsrc num-buffers=${FINITE} pattern=red`, finite: true }),
    endless: (format) => new GstreamerSource({ camera: 'cam', format, pipeline: 'videotestsrc is-live=true pattern=red' }),
    missing: (format) => new GstreamerSource({ camera: 'cam', format, pipeline: `filesrc location=${join(dir, 'no-such.mkv')} ! decodebin` }),
    colour: [255, 0, 0],
    tol: 2,
  }),
  folder: () => ({
    finite: (format) => new FolderSource({ camera: 'cam', format, path: images }),
    endless: (format) => new FolderSource({ camera: 'cam', format, path: images, loop: true, fps: 50 }),
    missing: (format) => new FolderSource({ camera: 'cam', format, path: join(dir, 'no-such-folder') }),
    colour: TEAL,
    tol: 0,
  }),
  synthetic: () => ({
    finite: (format) => new SyntheticSource({ camera: 'cam', format, seed: 7, classes: ['x'], count: FINITE, fps: 200 }),
    endless: (format) => new SyntheticSource({ camera: 'cam', format, seed: 7, classes: ['x'], fps: 50 }),
    missing: (format) => new SyntheticSource({ camera: 'cam', format, seed: 7, crashAfter: 0 }),
    colour: synthColour,
    tol: 0,
  }),
};

const RGB24: FrameFormat = { width: 16, height: 12, channels: 3 };
const RGBA: FrameFormat = { width: 8, height: 6, channels: 4 };

/** Records a source's frames, states and end events from now on. */
function watch(src: FrameSource) {
  const frames: Frame[] = [];
  const states: CameraState[] = [src.state];
  const ends: EndInfo[] = [];
  src.on('frame', (f) => frames.push(f));
  src.on('state', (e) => states.push(e.state));
  src.on('end', (e) => ends.push(e));
  const ended = new Promise<EndInfo>((r) => src.once('end', r));
  return { frames, states, ends, ended };
}

function untilFrames(frames: Frame[], n: number, t: ExecutionContext, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const poll = () => {
      if (frames.length >= n) return resolve();
      if (Date.now() - t0 > timeoutMs) return reject(new Error(`${t.title}: only ${frames.length} of ${n} frames in ${timeoutMs} ms`));
      setTimeout(poll, 10);
    };
    poll();
  });
}

/** Every frame is the format's size and the rig's colour, from this camera, ids consecutive from `firstId`. */
function checkFrames(t: ExecutionContext, rig: Rig, frames: Frame[], format: FrameFormat, firstId: number, t0: number, t1: number) {
  frames.forEach((f, i) => {
    t.deepEqual([f.width, f.height, f.channels], [format.width, format.height, format.channels]);
    t.is(f.data.length, format.width * format.height * format.channels, `frame ${f.frameId}: H×W×C bytes`);
    t.is(f.camera, 'cam');
    t.is(f.frameId, firstId + i, 'frame ids are consecutive');
    t.true(f.captureTs >= t0 && f.captureTs <= t1, `frame ${f.frameId}: captureTs within the run`);
    if (i > 0) t.true(f.captureTs >= frames[i - 1]!.captureTs, 'captureTs never goes back');
    t.true(maxColourError(f, rig.colour) <= rig.tol, `frame ${f.frameId}: colour off by ${maxColourError(f, rig.colour)}`);
    if (format.channels === 4) for (let p = 3; p < f.data.length; p += 4) if (f.data[p] !== 255) return t.fail(`frame ${f.frameId}: alpha ${f.data[p]} at byte ${p}`);
  });
}

for (const [name, make] of Object.entries(rigs)) {
  test(`${name}: a finite run is starting → running → stopped, exactly its frames (H×W×3, its colour, ids from 1), then eof`, async (t) => {
    const rig = make();
    const src = rig.finite(RGB24);
    t.true(src.finite);
    t.is(src.state, 'stopped', 'stopped before start');
    const w = watch(src);
    const t0 = Date.now();
    await src.start();
    const end = await w.ended;
    t.is(end.reason, 'eof');
    t.is(w.frames.length, FINITE);
    checkFrames(t, rig, w.frames, RGB24, 1, t0, Date.now());
    t.deepEqual(w.states, ['stopped', 'starting', 'running', 'stopped']);
    t.is(src.state, 'stopped');
    t.true(Array.isArray(src.diagnostics()));
    await src.stop(); // after the end: a no-op
    t.is(w.ends.length, 1, 'one end per run');
  });

  test(`${name}: RGBA frames are H×W×4 with opaque alpha and the same colour`, async (t) => {
    const rig = make();
    const src = rig.finite(RGBA);
    const w = watch(src);
    const t0 = Date.now();
    await src.start();
    t.is((await w.ended).reason, 'eof');
    t.is(w.frames.length, FINITE);
    checkFrames(t, rig, w.frames, RGBA, 1, t0, Date.now());
  });

  test(`${name}: stop() ends an endless run ('stopped', once, nothing after); a new run continues the frame ids`, async (t) => {
    const rig = make();
    const src = rig.endless(RGB24);
    t.false(src.finite);
    const w = watch(src);
    const t0 = Date.now();
    await src.start();
    await src.start(); // a second start while running is a no-op
    await untilFrames(w.frames, 3, t);
    await src.stop();
    const n = w.frames.length;
    t.is(src.state, 'stopped');
    t.is((await w.ended).reason, 'stopped');
    await src.stop();
    await new Promise((r) => setTimeout(r, 100));
    t.is(w.frames.length, n, 'no frame after stop() resolved');
    t.is(w.ends.length, 1, 'stop() twice ends the run once');
    checkFrames(t, rig, w.frames, RGB24, 1, t0, Date.now());

    const again = watch(src);
    const t1 = Date.now();
    await src.start();
    await untilFrames(again.frames, 2, t);
    await src.stop();
    checkFrames(t, rig, again.frames, RGB24, n + 1, t1, Date.now());
    t.deepEqual(again.states.slice(0, 3), ['stopped', 'starting', 'running']);
  });

  test(`${name}: a camera that is not there never rejects start(): the run ends 'crashed' with an error, no frames`, async (t) => {
    const src = make().missing(RGB24);
    const w = watch(src);
    await t.notThrowsAsync(src.start());
    const end = await w.ended;
    t.is(end.reason, 'crashed');
    t.truthy(end.error?.code, JSON.stringify(end));
    t.is(w.frames.length, 0);
    t.is(src.state, 'stopped');
    t.is(w.states.at(-1), 'stopped');
  });
}

test('synthetic cycle: a handful of frames rendered once and repeated (the bench source that costs no CPU per frame)', async (t) => {
  const src = new SyntheticSource({ camera: 'c', format: { width: 8, height: 8, channels: 3 }, fps: 200, cycle: 3, count: 7 });
  const frames: Frame[] = [];
  src.on('frame', (f) => frames.push(f));
  const ended = new Promise((r) => src.once('end', r));
  await src.start();
  await ended;
  t.is(frames.length, 7);
  t.is(frames[0]!.data, frames[3]!.data, 'the same buffer, not a copy');
  t.is(frames[1]!.data, frames[4]!.data);
  t.not(frames[0]!.data, frames[1]!.data);
  t.deepEqual(frames.map((f) => f.frameId), [...frames.map((f) => f.frameId)].sort((a, b) => a - b), 'frame ids still rise');
});
