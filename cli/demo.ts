/**
 * `npm run demo`: the main job on embedded defaults, no services needed. The demo line
 * (configs/demo/demo.yaml, cli/demo-line.ts) names everything: the committed items passing the
 * camera (so no dataset is needed), the committed signed artifact (`--rebuild` compiles it
 * again), the camera pace and a reject gate. The demo makes a video of the items, starts an
 * in-process MQTT broker (aedes) and the device runtime reading the video through ffmpeg; NG
 * parts go to the reject gate over a serial line (an in-process mock port: the same SerialLink
 * contract a USB-serial gate uses), and a subscriber prints every result and a summary against
 * the known truth (escape and false-reject rates for an inspection model).
 */
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { Aedes } from 'aedes';
import { compileTask } from '../compiler/export/compile.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { CompilerError } from '../compiler/ops/errors.ts';
import { generateKeyPair, writeKeyPair } from '../runtime/artifact/index.ts';
import type { Manifest } from '../runtime/artifact/manifest.ts';
import { Runtime } from '../runtime/app/runtime.ts';
import { parseDeviceConfig } from '../runtime/config/device-config.ts';
import { subscribeResults, type ResultMessage } from '../runtime/mqtt/client.ts';
import { defaultLog } from '../runtime/log.ts';
import { MockSerialBus } from '../devices/serial/mock-link.ts';
import { makeItemsVideo } from './demo-video.ts';
import { writeLineItems } from './demo-items.ts';
import { checkItemsUnseen, loadDemoLine, type DemoLine } from './demo-line.ts';
import { partLine, summaryLines, type GateEvent } from './demo-summary.ts';
import { startDemoDashboard } from './dashboard.ts';
import { untilSignal } from './record.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
export const DEFAULT_DEMO_LINE = join(root, 'configs/demo/demo.yaml');
const DEVICE = 'demo-line';
const CAMERA = 'line1';
/** The mock port the reject gate listens on (nothing is opened on the machine). */
const GATE_PORT = 'mock:reject-gate';

export interface DemoFlags {
  rebuild?: boolean;
  /** Also serve the line dashboard on the demo's broker and keep the line running (video looped) until Ctrl-C. */
  dashboard?: boolean;
  perClass: number;
  fps?: number;
  line?: string;
}

const step = (s: string) => console.log(`\n▶ ${s}`);
const rel = (p: string) => (p.startsWith(root) ? p.slice(root.length) : p);

async function rebuild(line: DemoLine, perClass: number): Promise<void> {
  checkItemsUnseen(line);
  step(`compile the demo artifact from ${rel(line.compile)} (train, export fused, verify, sign)`);
  const out = join(root, 'out/demo-build');
  mkdirSync(out, { recursive: true });
  const keys = await writeKeyPair(generateKeyPair(), join(out, 'demo'), { force: true });
  const r = await compileTask({ configFile: line.compile, precisions: ['fp32'], maxDropPt: 0.5, signKey: keys.privatePath, target: 'x86-cpu', fresh: true, progress: makeProgress('auto') });
  writeFileSync(line.artifact, r.artifact);
  copyFileSync(keys.publicPath, line.publicKey);
  const n = Math.max(line.items.stored, perClass);
  const meta = await writeLineItems(line.items.sheet, line.items.source, n);
  console.log(`  wrote ${rel(line.artifact)} (validation top-1 ${(100 * r.manifest.metrics.fp32!.top1).toFixed(1)} %) and ${rel(line.publicKey)} (key ${keys.keyId}); the private key stays in out/demo-build/`);
  console.log(`  wrote ${rel(line.items.sheet)} (+ .json): ${n} items per class from ${meta.source}`);
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
  const line = loadDemoLine(flags.line ?? DEFAULT_DEMO_LINE);
  const fps = flags.fps ?? line.camera.fps;
  console.log(`EdgePrompt demo: ${line.title}. A prompt-tuned ViT fused into one signed artifact, every result over MQTT, NG parts to a reject gate.`);
  if (flags.rebuild || !existsSync(line.artifact)) await rebuild(line, flags.perClass);

  const work = join(root, 'out/demo');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  step(`make a sample video: ${flags.perClass} items per class passing the camera at ${fps} fps (${rel(line.items.sheet)}: items the model neither trained nor validated on)`);
  const video = await makeItemsVideo(join(work, 'line.mp4'), line.items.sheet, { perClass: flags.perClass, fps, upscale: line.camera.upscale });
  const truth = (frameId: string) => video.labels[(Number(frameId) - 1) % video.labels.length]; // frames keep counting when the video loops
  console.log(`  ${video.labels.length} frames → out/demo/line.mp4`);

  step('start an in-process MQTT broker (aedes)');
  const broker = await startBroker();
  console.log(`  ${broker.url}`);
  const dash = flags.dashboard ? await startDemoDashboard(broker.url, join(root, 'out/demo-dashboard')) : null;
  if (dash) console.log(`\n▶ line dashboard (recorder built in, database out/demo-dashboard/db): open ${dash.url}  — Ctrl-C stops the demo`);

  step(`connect the reject gate: a serial line (${GATE_PORT}, in-process mock port) that diverts a part ${line.rejectGate.delayMs} ms after its capture (conveyor travel)`);
  const bus = new MockSerialBus();
  const gatePort = bus.createPort(GATE_PORT);
  const gate: (GateEvent & { at: number })[] = [];
  const captureTs = new Map<string, number>();
  gatePort.on('line', (l) => {
    const frameId = l.split(' ').at(-1)!;
    const at = Date.now();
    // On a loaded machine the gate can fire before the result reaches the subscriber: its lag is
    // then taken at the summary, once every result (and capture time) is in.
    const captured = captureTs.get(frameId);
    gate.push({ frameId, line: l, at, afterCaptureMs: captured === undefined ? NaN : at - captured });
    console.log(`      ⤷ reject gate: "${l}" (frame ${frameId}, truth ${truth(frameId) ?? '?'}, ${captured === undefined ? 'before its result reached the subscriber' : `${at - captured} ms after capture`})`);
  });

  step(`subscribe to edgeprompt/v1/${DEVICE}/+/result (the client library a line PC would use)`);
  const results: ResultMessage[] = [];
  let manifest: Manifest | undefined; // set once the runtime has loaded the artifact, before any result
  const sub = subscribeResults({ url: broker.url, protocolVersion: 4, device: DEVICE }, (m) => {
    results.push(m);
    captureTs.set(m.result.frameId, m.result.captureTs);
    if (manifest) console.log(partLine(m, truth(m.result.frameId), manifest));
  });
  await sub.ready;

  step('start the device runtime: verify the signed artifact, ORT session (EP fallback), ffmpeg camera, pipeline, MQTT reporter, reject gate');
  const cfg = parseDeviceConfig(
    {
      device: DEVICE,
      artifact: line.artifact,
      trustedKeys: [line.publicKey],
      profile: 'x86-cpu',
      cameras: [{ id: CAMERA, kind: 'ffmpeg', input: { kind: 'file', path: video.file, realtime: true, loop: dash !== null } }],
      rejects: { [CAMERA]: { link: { kind: 'serialport', path: GATE_PORT }, delayMs: line.rejectGate.delayMs, line: line.rejectGate.line } },
      mqtt: { url: broker.url, protocolVersion: 4, reconnectPeriodMs: 200 },
      outbox: { kind: 'file', dir: join(work, 'outbox') },
      health: { intervalMs: 1000 },
    },
    join(work, 'device.yaml'),
  );
  process.env.EDGEPROMPT_LOG_LEVEL ??= 'error'; // the demo prints its own story
  const rt = await Runtime.start(cfg, { log: defaultLog('edgeprompt.demo'), serialLinks: (spec) => bus.link(spec) });
  const loaded = rt.host.current!;
  const m = loaded.manifest;
  const missing = [...new Set(video.labels)].filter((l) => !m.labels.includes(l));
  if (missing.length) {
    await rt.stop();
    await sub.close();
    await dash?.close();
    await broker.close();
    throw new CompilerError('CONFIG_INVALID', `${line.file}: the items (${rel(line.items.sheet)}) hold classes the artifact ${basename(line.artifact)} does not know (${missing.join(', ')}; it knows ${m.labels.join(', ')}); run \`npm run demo -- --rebuild\``);
  }
  manifest = m;
  const rule = m.thresholds.okLabels ? `pass when the top label is one of [${m.thresholds.okLabels.join(', ')}] and p(ok) ≥ ${m.thresholds.minConfidence}` : `OK when the top score ≥ ${m.thresholds.minConfidence}`;
  console.log(`  model ${m.name} ${m.version} (${m.method.name}, ${m.precision}) on execution provider ${loaded.ep}; labels ${m.labels.join(', ')}; ${rule}`);
  if (dash) await untilSignal(); // the looped line runs until Ctrl-C
  else await rt.ended;
  // Results are published by now or shortly; the last NG's gate fires delayMs after its capture.
  const deadline = Date.now() + 5000 + line.rejectGate.delayMs;
  const processed = () => rt.pipeline.stats()[CAMERA]!.processed;
  const ngDiverted = () => results.filter((r) => r.result.decision === 'NG').every((r) => gate.some((g) => g.frameId === r.result.frameId));
  while ((results.length < processed() || !ngDiverted()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await rt.stop({ drainMs: 3000 });
  const stats = rt.pipeline.stats()[CAMERA]!;
  await sub.close();
  await dash?.close();
  await broker.close();

  step('summary');
  for (const g of gate) if (Number.isNaN(g.afterCaptureMs)) g.afterCaptureMs = g.at - (captureTs.get(g.frameId) ?? g.at);
  const lines = summaryLines({ results, truth, manifest: m, gate, gateDelayMs: line.rejectGate.delayMs, stats, fps, wallSeconds: (performance.now() - t0) / 1000 });
  for (const l of lines) console.log(l);
}
