// GStreamer sources against the real gst-launch-1.0 (plugins base/good).

import test from 'ava';
import type { EndInfo, Frame } from '../devices/cameras/frame.ts';
import { GstreamerSource, gstArgs, splitPipeline } from '../devices/cameras/gstreamer.ts';
import { CameraError } from '../devices/errors.ts';
import { maxColourError, pixel } from './helpers/media.ts';

async function drain(src: GstreamerSource): Promise<{ frames: Frame[]; end: EndInfo }> {
  const frames: Frame[] = [];
  src.on('frame', (f) => frames.push(f));
  const ended = new Promise<EndInfo>((r) => src.once('end', r));
  await src.start();
  return { frames, end: await ended };
}

test('videotestsrc num-buffers=5 yields exactly 5 RGB frames of W×H×3 with the right colour', async (t) => {
  const src = new GstreamerSource({ camera: 'g', format: { width: 24, height: 16, channels: 3 }, pipeline: 'videotestsrc num-buffers=5 pattern=red', finite: true });
  const { frames, end } = await drain(src);
  t.is(end.reason, 'eof');
  t.is(frames.length, 5);
  for (const f of frames) {
    t.is(f.data.length, 24 * 16 * 3);
    t.true(maxColourError(f, [255, 0, 0]) <= 2, `${pixel(f, 0, 0)}`);
  }
  t.deepEqual(frames.map((f) => f.frameId), [1, 2, 3, 4, 5]);
});

test('RGBA output (the Jetson nvvidconv shape) gives W×H×4 frames', async (t) => {
  const src = new GstreamerSource({ camera: 'g', format: { width: 8, height: 8, channels: 4 }, pipeline: 'videotestsrc num-buffers=3 pattern=blue', finite: true });
  const { frames } = await drain(src);
  t.is(frames.length, 3);
  t.is(frames[0]!.data.length, 8 * 8 * 4);
  t.deepEqual(pixel(frames[0]!, 3, 3), [0, 0, 255, 255]);
});

test('pipelines copied from a shell work: quoted caps are split like a shell would', async (t) => {
  const src = new GstreamerSource({
    camera: 'g',
    format: { width: 16, height: 12, channels: 3 },
    pipeline: `videotestsrc num-buffers=4 pattern=green ! 'video/x-raw,width=320,height=240,framerate=30/1'`,
    finite: true,
  });
  const { frames } = await drain(src);
  t.is(frames.length, 4);
  t.true(maxColourError(frames[0]!, [0, 255, 0]) <= 2);
});

test('an unknown element crashes the run with the gst error in the tail, not in the frame stream', async (t) => {
  const src = new GstreamerSource({ camera: 'g', format: { width: 8, height: 8, channels: 3 }, pipeline: 'nosuchsrc ! videoconvert' });
  const { frames, end } = await drain(src);
  t.is(frames.length, 0);
  t.is(end.reason, 'crashed');
  t.is(end.error?.code, 'E_EXIT');
  t.true(end.stderrTail.some((l) => /no element "nosuchsrc"/.test(l)), end.stderrTail.join('\n'));
});

test('a non-finite pipeline that reaches EOS is reported as an end (the watchdog will restart it)', async (t) => {
  const src = new GstreamerSource({ camera: 'g', format: { width: 8, height: 8, channels: 3 }, pipeline: 'videotestsrc num-buffers=2' });
  t.false(src.finite);
  const { end } = await drain(src);
  t.is(end.reason, 'eof');
});

test('splitPipeline follows shell quoting', (t) => {
  t.deepEqual(splitPipeline(`a b=1 ! 'x/y(memory:NVMM),w=1' ! c "d e" f\\ g`), ['a', 'b=1', '!', 'x/y(memory:NVMM),w=1', '!', 'c', 'd e', 'f g']);
  t.deepEqual(splitPipeline('  a   !  b  '), ['a', '!', 'b']);
  const err = t.throws(() => splitPipeline(`a ! 'b`), { instanceOf: CameraError });
  t.is(err.code, 'E_CAMERA_CONFIG');
});

test('gstArgs appends convert, caps and fdsink, and refuses a pipeline with its own sink', (t) => {
  const format = { width: 224, height: 224, channels: 4 as const };
  t.deepEqual(gstArgs({ camera: 'j', format, pipeline: 'nvarguscamerasrc ! nvvidconv', convert: false }), [
    '-q', 'nvarguscamerasrc', '!', 'nvvidconv', '!', 'video/x-raw,format=RGBA,width=224,height=224', '!', 'fdsink', 'fd=1', 'sync=false',
  ]);
  t.deepEqual(gstArgs({ camera: 'c', format: { ...format, channels: 3 }, pipeline: 'v4l2src' }).slice(2, 6), ['!', 'videoconvert', '!', 'videoscale']);
  for (const pipeline of ['videotestsrc ! fdsink fd=1', 'videotestsrc ! autovideosink', 'videotestsrc !', '   ']) {
    const err = t.throws(() => gstArgs({ camera: 'x', format, pipeline }), { instanceOf: CameraError });
    t.is(err.field, 'pipeline');
  }
});
