/**
 * `npm run demo`: the main job on embedded defaults, no services needed. A sample video of items
 * on a sorting line (made here from Fashion-MNIST 5–9 test images committed in
 * configs/demo/line-items.png, so no dataset is needed), the committed signed demo
 * artifact (VPT-deep on the shipped backbone; `--rebuild` compiles it again), an in-process MQTT broker (aedes), the device
 * runtime reading the video through ffmpeg, and a subscriber printing every result and a summary
 * against the known labels.
 */
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { Aedes } from 'aedes';
import { compileTask } from '../compiler/export/compile.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { generateKeyPair, writeKeyPair } from '../runtime/artifact/index.ts';
import { Runtime } from '../runtime/app/runtime.ts';
import { parseDeviceConfig } from '../runtime/config/device-config.ts';
import { subscribeResults, type ResultMessage } from '../runtime/mqtt/client.ts';
import { defaultLog } from '../runtime/log.ts';
import { makeFashionVideo, writeDemoItems } from './demo-video.ts';
import { startDemoDashboard } from './dashboard.ts';
import { untilSignal } from './record.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const ARTIFACT = join(root, 'configs/demo/fmnist-vpt-deep.epk');
const CONFIG = join(root, 'configs/demo-fmnist.yaml');
const CLASSES = [5, 6, 7, 8, 9];
const PUBKEY = join(root, 'configs/demo/demo.pub');
/** The line's items (committed; `--rebuild` writes them again from the dataset). */
const ITEMS = join(root, 'configs/demo/line-items.png');
const ITEMS_PER_CLASS = 24;
const DEVICE = 'demo-line';

export interface DemoFlags {
  rebuild?: boolean;
  /** Also serve the line dashboard on the demo's broker and keep the line running (video looped) until Ctrl-C. */
  dashboard?: boolean;
  perClass: number;
  fps: number;
}

const step = (s: string) => console.log(`\n▶ ${s}`);
const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

async function rebuild(perClass: number): Promise<void> {
  step('compile the demo artifact (train VPT-deep on Fashion-MNIST 5–9, export fused, verify, sign)');
  const out = join(root, 'out/demo-build');
  mkdirSync(out, { recursive: true });
  const keys = await writeKeyPair(generateKeyPair(), join(out, 'demo'), { force: true });
  const r = await compileTask({ configFile: CONFIG, precisions: ['fp32'], maxDropPt: 0.5, signKey: keys.privatePath, target: 'x86-cpu', progress: makeProgress('auto') });
  mkdirSync(join(root, 'configs/demo'), { recursive: true });
  writeFileSync(ARTIFACT, r.artifact);
  copyFileSync(keys.publicPath, PUBKEY);
  const n = Math.max(ITEMS_PER_CLASS, perClass);
  await writeDemoItems(ITEMS, { classes: CLASSES, perClass: n, skipPerClass: 200, seed: 7 });
  console.log(`  wrote configs/demo/fmnist-vpt-deep.epk (validation top-1 ${(100 * r.manifest.metrics.fp32!.top1).toFixed(1)} %) and configs/demo/demo.pub (key ${keys.keyId}); the private key stays in out/demo-build/`);
  console.log(`  wrote configs/demo/line-items.png (+ .json): ${n} Fashion-MNIST test items per class for the sample video`);
}

async function startBroker(): Promise<{ url: string; close(): Promise<void> }> {
  const broker = await Aedes.createBroker();
  const server = net.createServer(broker.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => broker.close(() => server.close(() => resolve()))),
  };
}

export async function demoCommand(flags: DemoFlags): Promise<void> {
  const t0 = performance.now();
  console.log('EdgePrompt demo: a sorting-line camera, a prompt-tuned ViT fused into one signed artifact, every result over MQTT.');
  if (flags.rebuild || !existsSync(ARTIFACT)) await rebuild(flags.perClass);

  const work = join(root, 'out/demo');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  step(`make a sample video: ${flags.perClass} items per class passing the camera at ${flags.fps} fps (Fashion-MNIST test images neither trained nor validated on, configs/demo/line-items.png)`);
  const video = await makeFashionVideo(join(work, 'line.mp4'), ITEMS, { perClass: flags.perClass, fps: flags.fps });
  console.log(`  ${video.labels.length} frames → out/demo/line.mp4`);
  const truthOf = (frameId: string) => video.labels[(Number(frameId) - 1) % video.labels.length]; // frames keep counting when the video loops

  step('start an in-process MQTT broker (aedes)');
  const broker = await startBroker();
  console.log(`  ${broker.url}`);
  const dash = flags.dashboard ? await startDemoDashboard(broker.url, join(root, 'out/demo-dashboard')) : null;
  if (dash) console.log(`\n▶ line dashboard (recorder built in, database out/demo-dashboard/db): open ${dash.url}  — Ctrl-C stops the demo`);

  step(`subscribe to edgeprompt/v1/${DEVICE}/+/result (the client library a line PC would use)`);
  const results: ResultMessage[] = [];
  const sub = subscribeResults({ url: broker.url, protocolVersion: 4, device: DEVICE }, (m) => {
    results.push(m);
    const r = m.result;
    const truth = truthOf(r.frameId);
    const mark = r.label === truth ? '✓' : '✗';
    console.log(`  #${String(r.seq).padStart(3)} frame ${String(r.frameId).padStart(3)} ${r.decision} ${r.label.padEnd(12)} ${(100 * r.score).toFixed(1).padStart(5)} % ${mark} (truth ${truth}) capture→publish ${r.latency.totalMs.toFixed(1)} ms`);
  });
  await sub.ready;

  step('start the device runtime: verify the signed artifact, ORT session (EP fallback), ffmpeg camera, pipeline, MQTT reporter');
  const cfg = parseDeviceConfig(
    {
      device: DEVICE,
      artifact: ARTIFACT,
      trustedKeys: [PUBKEY],
      profile: 'x86-cpu',
      cameras: [{ id: 'line1', kind: 'ffmpeg', input: { kind: 'file', path: video.file, realtime: true, loop: dash !== null } }],
      mqtt: { url: broker.url, protocolVersion: 4, reconnectPeriodMs: 200 },
      outbox: { kind: 'file', dir: join(work, 'outbox') },
      health: { intervalMs: 1000 },
    },
    join(work, 'device.yaml'),
  );
  process.env.EDGEPROMPT_LOG_LEVEL ??= 'error'; // the demo prints its own story
  const rt = await Runtime.start(cfg, { log: defaultLog('edgeprompt.demo') });
  const loaded = rt.host.current!;
  const m = loaded.manifest;
  console.log(`  model ${m.name} ${m.version} (${m.method.name}, ${m.precision}) on execution provider ${loaded.ep}; labels ${m.labels.join(', ')}`);
  if (dash) await untilSignal(); // the looped line runs until Ctrl-C
  else await rt.ended;
  await rt.stop({ drainMs: 3000 });
  const stats = rt.pipeline.stats().line1!;
  const deadline = Date.now() + 5000;
  while (results.length < stats.processed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await sub.close();
  await dash?.close();
  await broker.close();

  step('summary');
  const correct = results.filter((m) => m.result.label === truthOf(m.result.frameId)).length;
  const lat = results.map((m) => m.result.latency.totalMs);
  const infer = results.map((m) => m.result.latency.inferMs);
  const gaps = results.filter((m) => m.gap).length;
  console.log(`  frames from the camera ${stats.framesIn}, results ${results.length} (dropped by newest-frame-wins ${stats.dropped}, seq gaps ${gaps})`);
  console.log(`  accuracy against the known labels: ${correct}/${results.length} = ${((100 * correct) / Math.max(1, results.length)).toFixed(1)} %`);
  const ok = results.filter((m) => m.result.decision === 'OK');
  const okRight = ok.filter((m) => m.result.label === truthOf(m.result.frameId)).length;
  console.log(`  decisions: ${ok.length} OK (confident; ${okRight} of them right = ${((100 * okRight) / Math.max(1, ok.length)).toFixed(1)} %), ${results.length - ok.length} NG (below the manifest's minConfidence: sent to manual check)`);
  console.log(`  capture→publish latency p50 ${q(lat, 0.5).toFixed(1)} ms, p99 ${q(lat, 0.99).toFixed(1)} ms; inference p50 ${q(infer, 0.5).toFixed(2)} ms`);
  console.log(`  processed ${stats.fpsProcessed.toFixed(1)} fps (the camera paced at ${flags.fps} fps); wall time ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
