// ffmpeg sources against real ffmpeg and real (generated) video files.

import test from 'ava';
import { createReadStream, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { FfmpegSource, resolveFfmpeg } from '../devices/cameras/ffmpeg.ts';
import type { Frame } from '../devices/cameras/frame.ts';
import { takeFrames } from '../devices/cameras/take.ts';
import { createSource } from '../devices/cameras/factory.ts';
import { bandsGraph, makeVideo, maxColourError, pixel, recordStates, solidGraph, tempDir, truncateCopy, waitForState } from './helpers/media.ts';

const TEAL: [number, number, number] = [40, 160, 200];
const BLUE: [number, number, number] = [0, 0, 255];
const GREEN: [number, number, number] = [0, 255, 0];
const RED: [number, number, number] = [255, 0, 0];

let dir = '';
let cleanup = async (): Promise<void> => {};
const media: Record<string, string> = {};

test.before(async () => {
  ({ dir, cleanup } = await tempDir());
  media.teal = await makeVideo(dir, { graph: solidGraph(TEAL, 96, 64, 10), seconds: 1, name: 'teal.mp4' });
  media.bands = await makeVideo(dir, { graph: bandsGraph(BLUE, GREEN, RED, 128, 64, 10), seconds: 0.5, codec: 'ffv1', name: 'bands.mkv' });
  media.short = await makeVideo(dir, { graph: 'testsrc2=s=160x120:r=25', seconds: 0.2, name: 'short.mp4' });
  const long = await makeVideo(dir, { graph: 'testsrc2=s=320x240:r=25', seconds: 2, name: 'long.mp4' });
  // The moov atom sits at the end of an mp4, so half a file is undecodable: ffmpeg exits 1.
  media.truncated = await truncateCopy(long, join(dir, 'truncated.mp4'), 0.5);
});
test.after.always(() => cleanup());

/** Runs a bare source to its end and returns every frame. */
async function drain(src: FfmpegSource): Promise<{ frames: Frame[]; reason: string }> {
  const frames: Frame[] = [];
  src.on('frame', (f) => frames.push(f));
  const ended = new Promise<string>((r) => src.once('end', (i) => r(i.reason)));
  await src.start();
  return { frames, reason: await ended };
}

test('a solid-colour video yields exactly W×H×3 frames of that colour, every frame, then eof', async (t) => {
  const t0 = Date.now();
  const src = new FfmpegSource({ camera: 'c1', format: { width: 32, height: 24, channels: 3 }, input: { kind: 'file', path: media.teal! } });
  const { frames, reason } = await drain(src);
  t.is(reason, 'eof');
  t.is(frames.length, 10, '1 s at 10 fps');
  for (const f of frames) {
    t.is(f.data.length, 32 * 24 * 3);
    t.deepEqual([f.width, f.height, f.channels], [32, 24, 3]);
    t.true(maxColourError(f, TEAL) <= 3, `pixel ${pixel(f, 0, 0)} vs ${TEAL}`);
    t.true(f.captureTs >= t0 && f.captureTs <= Date.now());
  }
  t.deepEqual(frames.map((f) => f.frameId), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.is(src.state, 'stopped');
});

test('RGBA output gives W×H×4 frames with opaque alpha', async (t) => {
  const src = new FfmpegSource({ camera: 'c1', format: { width: 16, height: 16, channels: 4 }, input: { kind: 'file', path: media.teal! } });
  const { frames } = await drain(src);
  t.is(frames.length, 10);
  t.is(frames[0]!.data.length, 16 * 16 * 4);
  t.is(pixel(frames[0]!, 5, 5)[3], 255);
  t.true(maxColourError(frames[0]!, TEAL) <= 3);
});

test('resize contract: stretch keeps the side bands, center-crop sees only the middle', async (t) => {
  const format = { width: 32, height: 32, channels: 3 as const };
  const stretch = (await drain(new FfmpegSource({ camera: 's', format, input: { kind: 'file', path: media.bands! }, resize: 'stretch', interpolation: 'neighbor' }))).frames[0]!;
  // lavfi draws in YUV, so colours come back within a couple of levels.
  const near = (got: number[], want: number[]): boolean => got.every((v, i) => Math.abs(v - want[i]!) <= 2);
  t.true(near(pixel(stretch, 0, 16), BLUE), `${pixel(stretch, 0, 16)}`);
  t.true(near(pixel(stretch, 16, 16), GREEN), `${pixel(stretch, 16, 16)}`);
  t.true(near(pixel(stretch, 31, 16), RED), `${pixel(stretch, 31, 16)}`);
  const crop = (await drain(new FfmpegSource({ camera: 'c', format, input: { kind: 'file', path: media.bands! }, resize: 'center-crop', interpolation: 'neighbor' }))).frames[0]!;
  t.is(crop.data.length, 32 * 32 * 3);
  t.true(maxColourError(crop, GREEN) <= 2, 'a 2:1 frame cropped to 1:1 keeps only the middle half');
});

test('loop replays a 5-frame file past its end with monotonic frame ids, and stop() ends the process', async (t) => {
  const src = new FfmpegSource({ camera: 'loop', format: { width: 16, height: 12, channels: 3 }, input: { kind: 'file', path: media.short!, loop: true } });
  t.false(src.finite);
  await src.start();
  const frames = await takeFrames(src, 17, 10_000);
  t.is(frames.length, 17);
  t.deepEqual(frames.map((f) => f.frameId), Array.from({ length: 17 }, (_, i) => i + 1));
  const ended = new Promise((r) => src.once('end', (i) => r(i.reason)));
  await src.stop();
  t.is(await ended, 'stopped');
  t.is(src.state, 'stopped');
});

test('fps limit and real-time pacing are applied by ffmpeg', async (t) => {
  // 2 s of 25 fps limited to 5 fps: 10 frames.
  const limited = new FfmpegSource({ camera: 'f', format: { width: 8, height: 8, channels: 3 }, input: { kind: 'lavfi', graph: 'testsrc2=s=64x48:r=25:d=2' }, fps: 5 });
  t.is((await drain(limited)).frames.length, 10);
  // -re: 6 frames at 10 fps take about 0.5 s instead of a few ms.
  const t0 = Date.now();
  const paced = new FfmpegSource({ camera: 'r', format: { width: 8, height: 8, channels: 3 }, input: { kind: 'lavfi', graph: 'testsrc2=s=64x48:r=10:d=0.6', realtime: true } });
  t.is((await drain(paced)).frames.length, 6);
  t.true(Date.now() - t0 >= 400, `took ${Date.now() - t0} ms`);
});

test('a truncated video is a crash: restarts with growing backoff and camera_state events carrying the stderr tail', async (t) => {
  const src = createSource(
    { kind: 'ffmpeg', id: 'trunc', input: { kind: 'file', path: media.truncated! }, watchdog: { backoff: { initialMs: 100, factor: 2, maxMs: 1000 } } },
    { input: { width: 32, height: 32 } },
  );
  const events = recordStates(src);
  await src.start();
  await waitForState(src, events, (e) => e.state === 'restarting' && e.attempt === 3, 30_000);
  await src.stop();
  const restarts = events.filter((e) => e.state === 'restarting');
  t.deepEqual(restarts.map((e) => e.retryInMs), [100, 200, 400]);
  t.true(restarts.every((e) => e.reason === 'crashed' && e.error?.code === 'E_EXIT' && e.exitCode === 1));
  t.true(restarts[0]!.stderrTail!.some((l) => l.includes('moov atom not found')), restarts[0]!.stderrTail!.join('\n'));
  t.deepEqual(events.slice(0, 4).map((e) => e.state), ['starting', 'restarting', 'starting', 'restarting']);
  t.is(events.at(-1)!.state, 'stopped');
  // The gaps between starts follow the backoff.
  const starts = events.filter((e) => e.state === 'starting').map((e) => e.ts);
  t.true(starts[2]! - starts[1]! >= 190, `second gap ${starts[2]! - starts[1]!} ms`);
});

test('a missing video file restarts too, and the tail says why', async (t) => {
  const src = createSource(
    { kind: 'ffmpeg', id: 'gone', input: { kind: 'file', path: join(dir, 'nope.mp4') }, watchdog: { backoff: { initialMs: 50 } } },
    { input: { width: 8, height: 8 } },
  );
  const events = recordStates(src);
  await src.start();
  const e = await waitForState(src, events, (x) => x.state === 'restarting');
  await src.stop();
  t.true(e.stderrTail!.some((l) => l.includes('No such file or directory')));
});

test('a missing ffmpeg binary ends the run with E_SPAWN instead of throwing', async (t) => {
  const src = new FfmpegSource({ camera: 'nob', format: { width: 8, height: 8, channels: 3 }, input: { kind: 'lavfi', graph: 'testsrc2' }, binary: '/nonexistent/ffmpeg' });
  const end = new Promise<import('../devices/cameras/frame.ts').EndInfo>((r) => src.once('end', r));
  await src.start();
  const info = await end;
  t.is(info.reason, 'crashed');
  t.is(info.error?.code, 'E_SPAWN');
});

test('without a system ffmpeg on PATH the @ffmpeg-installer binary is used, and it decodes', async (t) => {
  const bin = resolveFfmpeg(undefined, '');
  t.regex(bin, /@ffmpeg-installer/);
  t.true(existsSync(bin));
  const src = new FfmpegSource({ camera: 'npm', format: { width: 16, height: 16, channels: 3 }, input: { kind: 'file', path: media.teal! }, binary: bin });
  const { frames } = await drain(src);
  t.is(frames.length, 10);
  t.true(maxColourError(frames[0]!, TEAL) <= 3);
});

test('an HTTP URL is a live stream: it decodes, and its end counts as a lost camera (restart, reason ended)', async (t) => {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'video/mp4' });
    createReadStream(media.teal!).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cam.mp4`;
  try {
    const src = createSource({ kind: 'ffmpeg', id: 'http', input: { kind: 'url', url }, watchdog: { backoff: { initialMs: 50 } } }, { input: { width: 16, height: 16 } });
    const events = recordStates(src);
    const frames: Frame[] = [];
    src.on('frame', (f) => frames.push(f));
    await src.start();
    const e = await waitForState(src, events, (x) => x.state === 'restarting');
    await src.stop();
    t.is(e.reason, 'ended');
    t.true(frames.length >= 10);
    t.true(maxColourError(frames[0]!, TEAL) <= 3);
  } finally {
    server.close();
  }
});

async function freePort(): Promise<number> {
  const srv = createTcpServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

test('an RTSP URL is read over TCP (the source listens here; a second ffmpeg plays the camera)', async (t) => {
  const url = `rtsp://127.0.0.1:${await freePort()}/cam`;
  const src = new FfmpegSource({ camera: 'rtsp', format: { width: 16, height: 16, channels: 3 }, input: { kind: 'url', url }, inputArgs: ['-rtsp_flags', 'listen'] });
  t.false(src.finite);
  const frames: Frame[] = [];
  src.on('frame', (f) => frames.push(f));
  const ended = new Promise((r) => src.once('end', (i) => r(i.reason)));
  await src.start();
  t.true(src.lastCommand.join(' ').includes(`-rtsp_transport tcp -analyzeduration 500000 -rtsp_flags listen -i ${url}`));
  await new Promise((r) => setTimeout(r, 300)); // let the listener bind
  const camera = spawn(resolveFfmpeg(), ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', solidGraph(RED, 64, 48, 10), '-t', '1', '-c:v', 'libx264', '-preset', 'ultrafast', '-f', 'rtsp', '-rtsp_transport', 'tcp', url], { stdio: 'ignore' });
  t.is(await ended, 'eof');
  camera.kill();
  t.true(frames.length >= 8, `${frames.length} frames`);
  t.true(maxColourError(frames.at(-1)!, RED) <= 3);
});

test('a frozen decoder (SIGSTOP: alive but silent) is caught by the watchdog and replaced', async (t) => {
  const bare = new FfmpegSource({ camera: 'frozen', format: { width: 8, height: 8, channels: 3 }, input: { kind: 'lavfi', graph: 'testsrc2=s=64x48:r=25', realtime: true } });
  const { Watchdog } = await import('../devices/cameras/watchdog.ts');
  const wd = new Watchdog(bare, { stallMs: 300, backoff: { initialMs: 50 } });
  const events = recordStates(wd);
  await wd.start();
  await takeFrames(wd, 3, 5000);
  const frozenPid = bare.pid!;
  process.kill(frozenPid, 'SIGSTOP');
  const stalled = await waitForState(wd, events, (e) => e.state === 'stalled');
  const back = await waitForState(wd, events, (e) => e.state === 'running' && e.ts > stalled.ts);
  t.true(back.ts - stalled.ts < 8000, `back after ${back.ts - stalled.ts} ms`);
  t.not(bare.pid, frozenPid);
  t.throws(() => process.kill(frozenPid, 0), undefined, 'the frozen ffmpeg was killed');
  await wd.stop();
});
