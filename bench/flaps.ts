// Cameras that flap: a running device whose live camera source goes away and comes back
// (test/helpers/flaps.ts has the rig; test/camera-flaps.test.ts runs a short version in CI).
//   npm run bench:flaps [-- --only ffmpeg-10s,ffmpeg-60s,ffmpeg-20-flaps,rtsp-restarts]
// Writes the "flaps" section of docs/bench/reliability.md. Targets: loss detected ≤ 2 s, recovery
// ≤ 2 s after the source returns, no stuck state, events published. Exits 1 on a broken contract.

import { parseArgs } from 'node:util';
import { runFlaps, type FlapPlan, type FlapStats } from '../test/helpers/flaps.ts';
import { loadNow, median, writeReportSection } from './lib.ts';

const { values } = parseArgs({ options: { only: { type: 'string' } } });
const SCENARIOS: Record<string, { what: string; plan: FlapPlan }> = {
  'ffmpeg-10s': { what: 'ffmpeg source (MPEG-TS over TCP) killed for 10 s', plan: { source: 'ffmpeg', outages: [10_000], upMs: 3000 } },
  'ffmpeg-60s': { what: 'ffmpeg source killed for 60 s', plan: { source: 'ffmpeg', outages: [60_000], upMs: 3000 } },
  'ffmpeg-20-flaps': { what: 'ffmpeg source killed 20 times for 2 s, running 6 s in between (past healthyAfterMs, 5 s: flaps, not a crash loop)', plan: { source: 'ffmpeg', outages: Array(20).fill(2000), upMs: 6000 } },
  'rtsp-restarts': { what: 'RTSP server (gst-rtsp-server, H.264) killed and started again 5 times, 5 s down', plan: { source: 'rtsp', outages: Array(5).fill(5000), upMs: 6000 } },
};
const which = values.only?.split(',') ?? Object.keys(SCENARIOS);
const loadBefore = loadNow();
const rows: { name: string; what: string; s: FlapStats }[] = [];
for (const name of which) {
  const sc = SCENARIOS[name];
  if (!sc) throw new Error(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(', ')}`);
  console.log(`— ${name}`);
  const s = await runFlaps({ ...sc.plan, progress: console.log });
  rows.push({ name, what: sc.what, s });
}
const mmm = (xs: number[]) => (xs.length === 0 ? '—' : `${Math.min(...xs).toFixed(0)} / ${median(xs).toFixed(0)} / ${Math.max(...xs).toFixed(0)}`);
const over = (xs: number[]) => xs.filter((x) => !(x <= 2000)).length;
const body = `
A running device (the fixture model, aedes, an ffmpeg camera with the default watchdog: restarts after 250 ms, 500 ms, then every second; a live stream probed for 0.5 s) whose source goes away (SIGKILL) and comes back. Loss: from the kill to the device's \`camera-lost\` event; recovery: from the source being back (listening: the ffmpeg source's port in /proc/net/tcp, the RTSP server printing \`ready\`) to its \`camera-restored\` event (the first frame again). Both from the events' own timestamps (one clock). min / median / max over the outages of a scenario.

| scenario | outages | loss detected, ms | recovery after the source is back, ms | outages over 2 s (loss / recovery) | events lost / restored | results in the 2 s after the last | violations |
|---|---|---|---|---|---|---|---|
${rows.map(({ name, what, s }) => `| ${name}: ${what} | ${s.outages.length} | ${mmm(s.outages.map((o) => o.detectMs))} | ${mmm(s.outages.map((o) => o.recoverMs))} | ${over(s.outages.map((o) => o.detectMs))} / ${over(s.outages.map((o) => o.recoverMs))} | ${s.lostEvents} / ${s.restoredEvents} | ${s.resultsAfter} | ${s.violations.length ? s.violations.join('; ') : 'none'} |`).join('\n')}

Where the time goes: the decoder sees the stream end at once (a killed source closes its connection), so loss is detected in tens of ms; a source that just stops sending is caught by the stall check after \`stallMs\` (2 s) plus at most one 200 ms tick. Recovery is the wait for the next retry (≤ 1 s while the camera is away), ffmpeg's start, the stream's probe (0.5 s) and the first keyframe; an RTSP server also prepares its media pipeline for the first client. Before this work the watchdog's backoff grew to 30 s, a camera away for 60 s met a 10-restarts-in-60-s budget and a 60 s cooldown, and ffmpeg probed a live stream for 5 s.
`;
const file = writeReportSection('reliability', 'Reliability: crash injection, faults, flapping cameras, fuzzing, soak', { id: 'flaps', title: 'Cameras that flap', command: `npm run bench:flaps${values.only ? ` -- --only ${values.only}` : ''}`, load: `${loadBefore} → ${loadNow()}` }, body);
console.log(`wrote ${file}`);
process.exit(rows.every((r) => r.s.violations.length === 0) ? 0 : 1);
