// Camera config validation, the factory, frame slicing and the synthetic source: no subprocesses.

import test from 'ava';
import { createSource, parseCameraConfig } from '../devices/cameras/factory.ts';
import { ffmpegArgs, ffmpegFilters } from '../devices/cameras/ffmpeg.ts';
import { RawFramer } from '../devices/cameras/framer.ts';
import { renderSynthetic, SyntheticSource } from '../devices/cameras/synthetic.ts';
import { takeFrames } from '../devices/cameras/take.ts';
import { Watchdog } from '../devices/cameras/watchdog.ts';
import { DeviceConfigError } from '../devices/errors.ts';

function configError(t: import('ava').ExecutionContext, raw: unknown, opts = {}): DeviceConfigError {
  const err = t.throws(() => createSource(raw, opts), { instanceOf: DeviceConfigError });
  t.is(err.code, 'E_CAMERA_CONFIG');
  return err;
}

test('config errors name the field and the bad value', (t) => {
  const kind = configError(t, { kind: 'webcam' }, { input: { width: 8, height: 8 } });
  t.is(kind.field, 'camera.kind');
  t.regex(kind.message, /ffmpeg \| gstreamer \| folder \| synthetic.*"webcam"/);

  const path = configError(t, { kind: 'ffmpeg', input: { kind: 'file' } }, { where: 'cameras[2]', input: { width: 8, height: 8 } });
  t.is(path.field, 'cameras[2].input.path');

  const typo = configError(t, { kind: 'folder', path: '/x', lop: true }, { input: { width: 8, height: 8 } });
  t.is(typo.field, 'camera.lop');
  t.regex(typo.message, /unknown field/);

  const url = configError(t, { kind: 'ffmpeg', input: { kind: 'url', url: 'cam.local/stream' } }, { input: { width: 8, height: 8 } });
  t.is(url.field, 'camera.input.url');
  t.regex(url.message, /rtsp:\/\/.*cam\.local\/stream/);

  const fps = configError(t, { kind: 'synthetic', fps: -3 }, { input: { width: 8, height: 8 } });
  t.is(fps.field, 'camera.fps');
  t.regex(fps.message, /-3/);
});

test('frame size comes from the model input; a camera that pins a different size is an error naming the field', (t) => {
  const missing = configError(t, { kind: 'synthetic' });
  t.deepEqual(missing.issues.map((i) => i.field), ['camera.width', 'camera.height']);
  const clash = configError(t, { kind: 'synthetic', width: 320, height: 224 }, { input: { width: 224, height: 224 } });
  t.is(clash.field, 'camera.width');
  t.regex(clash.message, /320.*224/);
  const src = createSource({ kind: 'synthetic', channels: 4 }, { input: { width: 224, height: 224 } });
  t.deepEqual(src.format, { width: 224, height: 224, channels: 4 });
});

test('the factory wraps sources in a watchdog unless watchdog: false', (t) => {
  const wrapped = createSource({ kind: 'gstreamer', pipeline: 'videotestsrc', watchdog: { stallMs: 500 } }, { input: { width: 8, height: 8 } });
  t.true(wrapped instanceof Watchdog);
  t.is(wrapped.kind, 'gstreamer');
  const bare = createSource({ kind: 'ffmpeg', input: { kind: 'v4l2', device: '/dev/video0' }, watchdog: false }, { input: { width: 8, height: 8 } });
  t.false(bare instanceof Watchdog);
  t.is(bare.kind, 'ffmpeg');
  t.is(parseCameraConfig({ kind: 'folder', path: 'bench' }).id, 'cam0');
});

test('ffmpeg arguments: loop and pacing before -i, rtsp over tcp, v4l2 options, filters and pixel format', (t) => {
  const format = { width: 224, height: 160, channels: 3 as const };
  const file = ffmpegArgs({ camera: 'c', format, input: { kind: 'file', path: 'v.mp4', loop: true, realtime: true }, fps: 5 });
  t.deepEqual(file.slice(file.indexOf('-stream_loop'), file.indexOf('-i') + 2), ['-stream_loop', '-1', '-re', '-i', 'v.mp4']);
  t.deepEqual(file.slice(-7), ['-vf', 'fps=5,scale=224:160:flags=bilinear', '-pix_fmt', 'rgb24', '-f', 'rawvideo', 'pipe:1']);
  const rtsp = ffmpegArgs({ camera: 'c', format: { ...format, channels: 4 }, input: { kind: 'url', url: 'rtsp://cam/1' } });
  t.deepEqual(rtsp.slice(rtsp.indexOf('-rtsp_transport'), rtsp.indexOf('-i') + 2), ['-rtsp_transport', 'tcp', '-analyzeduration', '500000', '-i', 'rtsp://cam/1']);
  t.true(rtsp.includes('rgba'));
  t.false(ffmpegArgs({ camera: 'c', format, input: { kind: 'url', url: 'http://cam/1.mjpg' } }).includes('-rtsp_transport'));
  const v4l2 = ffmpegArgs({ camera: 'c', format, input: { kind: 'v4l2', device: '/dev/video2', inputFormat: 'mjpeg', size: '1280x720', framerate: 30 } });
  t.deepEqual(v4l2.slice(v4l2.indexOf('-f'), v4l2.indexOf('-i') + 2), ['-f', 'v4l2', '-input_format', 'mjpeg', '-video_size', '1280x720', '-framerate', '30', '-i', '/dev/video2']);
  t.is(ffmpegFilters({ format, resize: 'center-crop' }), 'scale=224:160:force_original_aspect_ratio=increase:flags=bilinear,crop=224:160');
});

test('RawFramer cuts any chunking into whole frames; frames inside one chunk are views, not copies', (t) => {
  const fb = 6;
  const stream = Uint8Array.from({ length: 6 * 5 }, (_, i) => i);
  for (const sizes of [[30], [1, 29], [4, 4, 4, 4, 4, 4, 6], [7, 5, 13, 5], [6, 6, 6, 6, 6], Array(30).fill(1)]) {
    const framer = new RawFramer(fb);
    const frames: Uint8Array[] = [];
    let off = 0;
    for (const n of sizes) {
      framer.push(stream.subarray(off, off + n), (f) => frames.push(Uint8Array.from(f)));
      off += n;
    }
    t.deepEqual(frames, [0, 1, 2, 3, 4].map((k) => stream.subarray(k * fb, k * fb + fb)), `chunks ${sizes}`);
    t.is(framer.partialBytes, 0);
  }
  const framer = new RawFramer(fb);
  const chunk = Buffer.from(stream.subarray(0, 14));
  const views: Uint8Array[] = [];
  framer.push(chunk, (f) => views.push(f));
  t.is(views.length, 2);
  t.is(views[0]!.buffer, chunk.buffer, 'no copy');
  t.is(framer.partialBytes, 2);
});

test('the synthetic source is deterministic per seed, labels frames by class and paces at its fps', async (t) => {
  const format = { width: 6, height: 4, channels: 3 as const };
  t.deepEqual(renderSynthetic({ format, seed: 7, pattern: 'noise' }, 3), renderSynthetic({ format, seed: 7, pattern: 'noise' }, 3));
  t.notDeepEqual(renderSynthetic({ format, seed: 7 }, 3).data, renderSynthetic({ format, seed: 8 }, 3).data);
  const src = new SyntheticSource({ camera: 's', format, seed: 3, fps: 100, classes: ['ok', 'ng'], count: 10 });
  const t0 = Date.now();
  await src.start();
  const frames = await takeFrames(src, 10, 2000);
  t.true(Date.now() - t0 >= 80);
  t.true(frames.every((f) => f.label === 'ok' || f.label === 'ng'));
  t.deepEqual(frames.map((f) => f.frameId), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const again = renderSynthetic({ format, seed: 3, classes: ['ok', 'ng'] }, 4);
  t.deepEqual(frames[3]!.data, again.data);
  t.is(frames[3]!.label, again.label);
});
