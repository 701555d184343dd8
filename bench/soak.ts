// The soak: the device runtime (the esbuild bundle, as deployed) for an hour at 30 fps on a shared
// backbone, a prompt-pack swap every 30 s over MQTT `reload`, and mosquitto stopped for 20 s every
// 10 minutes. Records the runtime's RSS, heap, open fds and live libuv resources over time
// (bench/soak-probe.mjs and /proc), process warnings (a listener leak), and checks by seq that no
// result was lost. Not in CI.
//   npm run bench:soak [-- --minutes 60 --swap-every 30 --outage-every 600 --outage 20]
// A short validation run: npm run bench:soak -- --minutes 3 --outage-every 60
// Writes the "soak" section of docs/bench/reliability.md and docs/bench/soak-rss.svg.

import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generateKeyPair, publicKeyPem } from '../runtime/artifact/index.ts';
import { subscribeHealth, subscribeResults } from '../runtime/mqtt/client.ts';
import type { HealthPayload } from '../runtime/schema/payloads.ts';
import { connectCommandClient } from '../runtime/mqtt/command-client.ts';
import { startMosquitto } from '../test/helpers/brokers.ts';
import { backboneArtifact, backbonePackTask, promptPack } from '../test/helpers/backbone-pack-models.ts';
import { loadNow, median, repo, writeReportSection } from './lib.ts';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '60' }, 'swap-every': { type: 'string', default: '30' }, 'outage-every': { type: 'string', default: '600' }, outage: { type: 'string', default: '20' }, fps: { type: 'string', default: '30' } } });
const minutes = Number(values.minutes);
const swapEvery = Number(values['swap-every']);
const outageEvery = Number(values['outage-every']);
const outageS = Number(values.outage);
const fps = Number(values.fps);
const command = `npm run bench:soak -- --minutes ${minutes} --swap-every ${swapEvery} --outage-every ${outageEvery} --outage ${outageS}`;
const loadBefore = loadNow();
const work = mkdtempSync(join(tmpdir(), 'ep-soak-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DEVICE = 'soak-1';

// The model: a vpt-deep task on the fixture ViT as a shared backbone and two packs of the same task name.
const key = generateKeyPair();
const sign = { privateKey: key.privateKey };
const [A, B] = await Promise.all([backbonePackTask(11, { classes: 10 }), backbonePackTask(12, { classes: 4 })]);
const bb = backboneArtifact(A, sign);
writeFileSync(join(work, 'backbone.epk'), bb.bytes);
writeFileSync(join(work, 'a1.epp'), promptPack(A, bb.manifest.model.sha256, { name: 'task-a', version: '1' }, sign).bytes);
writeFileSync(join(work, 'a2.epp'), promptPack(B, bb.manifest.model.sha256, { name: 'task-a', version: '2' }, sign).bytes);
const size = A.task.cfg.imgSize;

// Built inside the repo so the bundle finds onnxruntime-node and serialport in node_modules, as a deploy does.
const dist = join(repo, `dist/.soak-${process.pid}`);
execFileSync(process.execPath, [join(repo, 'tools/build-runtime.mjs'), '--outdir', dist], { stdio: 'ignore' });
const m = await startMosquitto({ dir: join(work, 'broker') });
writeFileSync(
  join(work, 'device.yaml'),
  JSON.stringify({
    device: DEVICE,
    artifact: 'backbone.epk',
    pack: 'a1.epp',
    trustedKeys: [publicKeyPem(key.publicKey)],
    profile: 'x86-cpu',
    cameras: [{ id: 'cam1', kind: 'ffmpeg', input: { kind: 'lavfi', graph: `testsrc2=size=${size}x${size}:rate=${fps}`, realtime: true } }],
    mqtt: { url: m.url, protocolVersion: 5, reconnectPeriodMs: 500 },
    outbox: { kind: 'file', dir: join(work, 'outbox') },
    health: { intervalMs: 5000 },
    // Keep rules on (issue 19): the defaults (NG, uncertain ±0.05, at most 10 a minute) plus a 1 %
    // random sample; the frames go up over the same MQTT session (no recorder here: the broker drops them).
    keep: { dir: join(work, 'keep'), rules: { random: { rate: 0.01 } } },
  }),
);

// The line PC: a persistent subscriber counting seqs, health, and a command client for the swaps.
const seqs = new Set<number>();
let deliveries = 0;
let gapsSeen = 0;
const sub = subscribeResults({ url: m.url, clientId: 'soak-backend', protocolVersion: 5, reconnectPeriodMs: 500, device: DEVICE, onError: () => {} }, (r) => {
  deliveries++;
  seqs.add(r.result.seq);
  if (r.gap) gapsSeen++;
});
await sub.ready;
let outboxDepth = -1;
let keep: HealthPayload['keep'];
const hsub = subscribeHealth({ url: m.url, protocolVersion: 5, reconnectPeriodMs: 500, device: DEVICE, onError: () => {} }, (h) => {
  outboxDepth = h.mqtt.outboxDepth;
  keep = h.keep ?? keep;
});
await hsub.ready;

interface Sample { s: number; rssMiB: number; heapMiB: number; fds: number; resources: number; byType: Record<string, number>; warnings: number }
const samples: Sample[] = [];
let lastWarning: string | null = null;
const t0 = Date.now();
const child = spawn(process.execPath, ['--import', join(repo, 'bench/soak-probe.mjs'), join(dist, 'edgeprompt-runtime.mjs'), 'run', '-c', join(work, 'device.yaml')], {
  stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
  env: { ...process.env, EDGEPROMPT_LOG_LEVEL: 'warn', SOAK_PROBE_MS: '5000' },
});
const fdsOf = (pid: number) => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
};
createInterface({ input: child.stdio[3] as NodeJS.ReadableStream }).on('line', (line) => {
  const p = JSON.parse(line) as { t: number; rss: number; heapUsed: number; resources: Record<string, number>; warnings: number; lastWarning: string | null };
  const resources = Object.values(p.resources).reduce((a, b) => a + b, 0);
  samples.push({ s: (p.t - t0) / 1000, rssMiB: p.rss / 2 ** 20, heapMiB: p.heapUsed / 2 ** 20, fds: fdsOf(child.pid!), resources, byType: p.resources, warnings: p.warnings });
  lastWarning = p.lastWarning;
});

const cmd = await connectCommandClient({ url: m.url, protocolVersion: 5 });
let swaps = 0;
let swapFailures = 0;
const swapErrors = new Set<string>();
/** Each failed swap: when it was sent (s since start), how long after the last broker outage ended, and why. */
const failedSwaps: { atS: number; afterOutageS: number | null; error: string }[] = [];
const outages: [number, number][] = [];
const endAt = t0 + minutes * 60_000;
let nextSwap = t0 + swapEvery * 1000;
let nextOutage = t0 + outageEvery * 1000;
let brokerDown = false;
while (Date.now() < endAt && child.exitCode === null) {
  const now = Date.now();
  if (now >= nextOutage && now + outageS * 1000 < endAt) {
    nextOutage += outageEvery * 1000;
    const from = (Date.now() - t0) / 1000;
    brokerDown = true;
    await m.stop();
    await sleep(outageS * 1000);
    await m.restart();
    brokerDown = false;
    outages.push([from, (Date.now() - t0) / 1000]);
    console.log(`broker outage ${outages.length}: ${from.toFixed(0)}-${((Date.now() - t0) / 1000).toFixed(0)} s`);
  } else if (now >= nextSwap) {
    nextSwap += swapEvery * 1000;
    const file = swaps % 2 === 0 ? 'a2.epp' : 'a1.epp';
    const r = await cmd.send(DEVICE, 'reload', { artifact: file }, { timeoutMs: 20_000 }).catch((e: Error) => ({ ok: false as const, error: { code: 'TIMEOUT', message: e.message } }));
    swaps++;
    if (!r.ok) {
      swapFailures++;
      swapErrors.add(`${r.error.code}: ${r.error.message}`.slice(0, 160));
      const atS = (now - t0) / 1000;
      const lastOutage = outages.at(-1);
      failedSwaps.push({ atS, afterOutageS: lastOutage ? atS - lastOutage[1] : null, error: r.error.code });
    }
  } else {
    await sleep(200);
  }
  const last = samples.at(-1);
  if (last && Math.floor(last.s) % 60 === 0) process.stdout.write(`\r${(last.s / 60).toFixed(1)} min: RSS ${last.rssMiB.toFixed(1)} MiB, fds ${last.fds}, resources ${last.resources}, results ${seqs.size}, swaps ${swaps}${brokerDown ? ' (broker down)' : ''}   `);
}
console.log();
// The device must still be running at the end of the run: an exit before is a failure, whatever else held.
const exitedEarly = child.exitCode !== null ? `exited after ${((Date.now() - t0) / 60_000).toFixed(1)} min with code ${child.exitCode}` : null;
if (exitedEarly) console.log(`device ${exitedEarly}`);

// Drain: stop taking frames, let the outbox empty, then stop the device.
await cmd.send(DEVICE, 'pause', {}, { timeoutMs: 20_000 }).catch(() => null);
const drainStart = Date.now();
let stable = 0;
while (Date.now() - drainStart < 120_000) {
  const before = seqs.size;
  await sleep(1000);
  stable = seqs.size === before && outboxDepth === 0 ? stable + 1 : 0;
  if (stable >= 6) break; // health every 5 s: one more report after the last result
}
child.kill('SIGTERM');
await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
await Promise.all([cmd.close(), sub.close(), hsub.close()]);
await m.stop();

// Lost: every seq from 0 to the highest received must have come (seq = the outbox id).
const maxSeq = Math.max(-1, ...seqs);
const lost = maxSeq + 1 - seqs.size;
// RSS slope after the warm-up (the first tenth of the run, at least 60 s): least squares, MiB per hour.
const warm = Math.max(60, (minutes * 60) / 10);
const after = samples.filter((x) => x.s >= warm);
function slope(xs: number[], ys: number[]): number {
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
const perHour = after.length > 2 ? slope(after.map((x) => x.s / 3600), after.map((x) => x.rssMiB)) : NaN;
const meanRss = after.length ? after.reduce((a, x) => a + x.rssMiB, 0) / after.length : NaN;
const heapPerHour = after.length > 2 ? slope(after.map((x) => x.s / 3600), after.map((x) => x.heapMiB)) : NaN;
const first = after[0];
const lastS = samples.at(-1);
const range = (f: (x: Sample) => number, xs = after) => (xs.length ? `${Math.min(...xs.map(f))} … ${Math.max(...xs.map(f))}` : '—');

// The plot: RSS (and heap) over time, broker outages shaded.
function svg(): string {
  const W = 720, H = 300, L = 56, R = 16, T = 24, Bm = 40;
  const xs = samples.map((x) => x.s / 60);
  const xMax = Math.max(minutes, ...xs);
  const yMax = Math.ceil(Math.max(...samples.map((x) => x.rssMiB), 1) / 20) * 20;
  const X = (v: number) => L + (v / xMax) * (W - L - R);
  const Y = (v: number) => H - Bm - (v / yMax) * (H - T - Bm);
  const line = (f: (x: Sample) => number) => samples.map((x, i) => `${i ? 'L' : 'M'}${X(x.s / 60).toFixed(1)},${Y(f(x)).toFixed(1)}`).join(' ');
  const ticksX = Array.from({ length: 7 }, (_, i) => (xMax * i) / 6);
  const ticksY = Array.from({ length: 5 }, (_, i) => (yMax * i) / 4);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">
<rect width="${W}" height="${H}" fill="white"/>
${outages.map(([a, b]) => `<rect x="${X(a / 60).toFixed(1)}" y="${T}" width="${Math.max(1, X(b / 60) - X(a / 60)).toFixed(1)}" height="${H - T - Bm}" fill="#fde2e2"/>`).join('\n')}
<rect x="${X(0)}" y="${T}" width="${(X(warm / 60) - X(0)).toFixed(1)}" height="${H - T - Bm}" fill="#f0f0f0"/>
${ticksY.map((v) => `<line x1="${L}" x2="${W - R}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="#ddd"/><text x="${L - 6}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end">${v.toFixed(0)}</text>`).join('\n')}
${ticksX.map((v) => `<text x="${X(v).toFixed(1)}" y="${H - Bm + 16}" text-anchor="middle">${v.toFixed(0)}</text>`).join('\n')}
<path d="${line((x) => x.rssMiB)}" fill="none" stroke="#1f6feb" stroke-width="1.5"/>
<path d="${line((x) => x.heapMiB)}" fill="none" stroke="#8a8a8a" stroke-width="1"/>
<text x="${L}" y="16">RSS (blue) and JS heap (grey) of the device runtime, MiB; broker outages shaded red, warm-up grey</text>
<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">minutes</text>
</svg>
`;
}
writeFileSync(join(repo, 'docs/bench/soak-rss.svg'), svg());

const ok = lost === 0 && lastWarning === null && swapFailures === 0 && exitedEarly === null;
const body = `
![RSS over time](soak-rss.svg)

The device runtime as deployed (the esbuild bundle, \`edgeprompt-runtime run\`, its own process; bench/soak-probe.mjs loaded with \`--import\` reports its memory and live libuv resources every 5 s), for ${minutes} min: a shared-backbone vpt-deep task on the fixture ViT (${size}×${size}), an ffmpeg camera (lavfi test pattern, ${fps} fps, real time), file outbox, MQTT v5 to mosquitto (persistence on) with a persistent subscriber; a prompt-pack swap (\`reload\` of task-a v1 ⇄ v2 over MQTT) every ${swapEvery} s, mosquitto stopped (SIGTERM) for ${outageS} s every ${outageEvery} s. Keep rules on: the defaults (NG, uncertain ±0.05, at most 10 a minute, 1 s apart) plus a 1 % random sample, the kept frames uploaded over the same session. At the end the camera is paused, the outbox drains and the device stops.

| measure | value |
|---|---|
| device ran to the end | ${exitedEarly ? `**no**: ${exitedEarly}` : 'yes'} |
| results delivered (distinct seqs) / deliveries | ${seqs.size} / ${deliveries} |
| **results lost** (seqs 0 … ${maxSeq} never received) | **${lost}** (gaps reported by the subscriber: ${gapsSeen}) |
| prompt-pack swaps / refused or timed out | ${swaps} / ${swapFailures}${swapErrors.size ? ` (${[...swapErrors].join('; ')})` : ''} |
| failed swaps: sent at (min), seconds after the last broker outage ended | ${failedSwaps.map((f) => `${(f.atS / 60).toFixed(1)} min, ${f.afterOutageS === null ? 'no outage before' : `${f.afterOutageS.toFixed(0)} s after one`} (${f.error})`).join('; ') || 'none'} |
| keep rules: frames kept / refused by a limit / uploaded (PUBACKed) / dropped by the spool bound / waiting at the end (last health) | ${keep ? `${keep.kept} / ${keep.limited} / ${keep.uploaded} / ${keep.dropped} / ${keep.spooled}` : '**no keep counters in health**'} |
| broker outages | ${outages.length} (${outages.map(([a, b]) => `${(a / 60).toFixed(1)}–${(b / 60).toFixed(1)} min`).join(', ') || 'none'}) |
| RSS after warm-up (${warm.toFixed(0)} s), first → last sample | ${first ? `${first.rssMiB.toFixed(1)} → ${lastS!.rssMiB.toFixed(1)} MiB` : '—'} |
| **RSS slope after warm-up** (least squares; target < 5 %/h) | **${perHour.toFixed(2)} MiB/h = ${((100 * perHour) / meanRss).toFixed(2)} %/h** of the mean ${meanRss.toFixed(1)} MiB |
| JS heap slope after warm-up | ${heapPerHour.toFixed(2)} MiB/h |
| open fds after warm-up (min … max) | ${range((x) => x.fds)} |
| live libuv resources after warm-up (min … max), last sample by type | ${range((x) => x.resources)}; ${lastS ? Object.entries(lastS.byType).map(([k, v]) => `${k} ${v}`).join(', ') : '—'} |
| process warnings (MaxListenersExceededWarning and the like) | ${lastS?.warnings ?? 0}${lastWarning ? `: ${lastWarning}` : ''} |
| samples | ${samples.length} (median RSS ${median(samples.map((x) => x.rssMiB)).toFixed(1)} MiB) |
`;
const file = writeReportSection('reliability', 'Reliability: crash injection, faults, flapping cameras, fuzzing, soak', { id: 'soak', title: `Soak: ${minutes} minutes`, command, load: `${loadBefore} → ${loadNow()}` }, body);
rmSync(work, { recursive: true, force: true });
rmSync(dist, { recursive: true, force: true });
console.log(`wrote ${file} and docs/bench/soak-rss.svg: lost ${lost}, RSS slope ${((100 * perHour) / meanRss).toFixed(2)} %/h, warnings ${lastS?.warnings ?? 0}, swaps failed ${swapFailures}`);
process.exit(ok ? 0 : 1);
