// The file outbox alone: results/s and durable writes per result, one durable write per result
// (group size 1: what "fsync every result" costs) against group commit (docs/mqtt.md), with the
// memory outbox as the ceiling. Settings run interleaved in rounds within each invocation, over
// ≥ 3 fresh invocations (bench/lib.ts), so the ratios compare like with like on a noisy machine.
//   npm run bench:outbox [-- --results 3000 --rounds 3 --invocations 3 --window 64]
// Writes the "group-commit" section of docs/bench/reliability.md.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Outbox } from '../runtime/mqtt/outbox.ts';
import { openFileOutbox, type FileOutbox } from '../runtime/mqtt/outbox-file.ts';
import { createMemoryOutbox } from '../runtime/mqtt/outbox-memory.ts';
import { encodePayload } from '../runtime/schema/codec.ts';
import { PAYLOAD_VERSION, ResultPayload } from '../runtime/schema/payloads.ts';
import { topics } from '../runtime/mqtt/topics.ts';
import { sampleResult } from '../test/helpers/brokers.ts';
import { acrossInvocations, fmtSpread, isInvocationChild, loadNow, median, spread, writeReportSection } from './lib.ts';

const { values } = parseArgs({
  options: {
    results: { type: 'string', default: '3000' },
    rounds: { type: 'string', default: '3' },
    invocations: { type: 'string', default: '3' },
    window: { type: 'string', default: '64' },
  },
});
const N = Number(values.results);
const ROUNDS = Number(values.rounds);
const WINDOW = Number(values.window);
const N_SINGLE = Math.min(N, 300); // one at a time: a 5 ms wait each, so fewer

interface Setting {
  name: string;
  open: (dir: string) => Promise<Outbox>;
}
const SETTINGS: Setting[] = [
  { name: 'one durable write per result (commitMaxRecords 1)', open: (dir) => openFileOutbox({ dir, commitDelayMs: 0, commitMaxRecords: 1 }) },
  { name: 'group commit, no wait (commitDelayMs 0)', open: (dir) => openFileOutbox({ dir, commitDelayMs: 0 }) },
  { name: 'group commit, default (commitDelayMs 5, commitMaxRecords 256)', open: (dir) => openFileOutbox({ dir }) },
  { name: 'memory outbox (no disk; the ceiling)', open: async () => createMemoryOutbox() },
];

/** A real result payload (~600 bytes), as the reporter encodes it. */
function payload(seq: number): { topic: string; payload: Buffer } {
  const topic = topics.result('press-7', 'cam1');
  const input = sampleResult('cam1', seq);
  return { topic, payload: encodePayload(ResultPayload, topic, { ...input, v: PAYLOAD_VERSION, device: 'press-7', seq, seqEpoch: 'bench', publishTs: Date.now() }) };
}

interface One {
  perS: number;
  writesPerResult: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * `N` results through one outbox with at most `window` puts outstanding (the pipeline does not wait
 * for a put before the next result; a camera faster than the disk keeps several in flight), each
 * acked once accepted, as PUBACKs would.
 */
async function pushThrough(s: Setting, window: number, n: number): Promise<One> {
  const dir = await mkdtemp(join(tmpdir(), 'ep-bench-outbox-'));
  const o = await s.open(dir);
  const records = Array.from({ length: n }, (_, i) => payload(i));
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (next < n) {
      const r = records[next++]!;
      const a = performance.now();
      const e = await o.put(r);
      lat.push(performance.now() - a);
      void o.ack(e.id);
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
  const ms = performance.now() - t0;
  const commits = (o as Partial<FileOutbox>).commits ?? 0;
  await o.close();
  await rm(dir, { recursive: true, force: true });
  lat.sort((a, b) => a - b);
  return { perS: (n / ms) * 1000, writesPerResult: commits / n, p50Ms: median(lat), p99Ms: lat[Math.floor(lat.length * 0.99)]! };
}

type Invocation = { window: Record<string, One[]>; single: Record<string, One[]> };

async function measure(): Promise<Invocation> {
  const out: Invocation = { window: {}, single: {} };
  for (let r = 0; r < ROUNDS; r++) {
    for (const s of SETTINGS) {
      (out.window[s.name] ??= []).push(await pushThrough(s, WINDOW, N));
      (out.single[s.name] ??= []).push(await pushThrough(s, 1, N_SINGLE));
    }
    console.log(`round ${r + 1} of ${ROUNDS}`);
  }
  return out;
}

const loadBefore = loadNow();
const invs = await acrossInvocations(Number(values.invocations), measure);
if (!isInvocationChild()) {
  // Per invocation: the median over rounds; across invocations: min / median / max.
  const per = (inv: Invocation, which: 'window' | 'single', name: string, f: (x: One) => number) => median(inv[which][name]!.map(f));
  const across = (which: 'window' | 'single', name: string, f: (x: One) => number) => spread(invs.map((inv) => per(inv, which, name, f)));
  const base = SETTINGS[0]!.name;
  const rows = (which: 'window' | 'single') =>
    SETTINGS.map((s) => {
      const ratio = spread(invs.map((inv) => per(inv, which, s.name, (x) => x.perS) / per(inv, which, base, (x) => x.perS)));
      return `| ${s.name} | ${fmtSpread(across(which, s.name, (x) => x.perS), 0)} | **${fmtSpread(ratio, 2)}** | ${fmtSpread(across(which, s.name, (x) => x.writesPerResult), 3)} | ${across(which, s.name, (x) => x.p50Ms).median.toFixed(2)} / ${across(which, s.name, (x) => x.p99Ms).median.toFixed(2)} |`;
    }).join('\n');
  const head = '| setting | results/s | ÷ one write per result | durable writes per result | put → accepted p50 / p99 ms (median over invocations) |\n|---|---|---|---|---|';
  const body = `
The file outbox alone (no MQTT): ${N} result payloads of ${payload(0).payload.length} bytes each go through \`put\` (acked as soon as accepted, as PUBACKs would), in each setting, ${ROUNDS} interleaved rounds per invocation, ${invs.length} fresh invocations; each cell is min / median / max over invocations of the per-invocation median. A durable write is one \`write()\` on the log opened \`O_DSYNC\`.

**Results arriving faster than the disk** (${WINDOW} puts outstanding, as when the pipeline hands results over without waiting for the previous one to be durable):

${head}
${rows('window')}

**One result at a time** (${N_SINGLE} results, each put awaited before the next: nothing to group, so a group is one result and \`commitDelayMs\` only adds its wait):

${head}
${rows('single')}

What this says: the file outbox has grouped its writes since it was written (its first version already wrote one batch with one \`fdatasync\` per drain; group commit with \`O_DSYNC\`, \`commitDelayMs\` and accept-after-durable came next, docs/mqtt.md). "One durable write per result" is the same code with \`commitMaxRecords 1\` (a group holds at most that many puts): what fsyncing every result costs. A durable write costs about the same whether it carries 1 or 60 records, so with results queued, groups divide the writes per result by the group size and results/s rise by about as much. With one result at a time there is nothing to group and every setting does one durable write per result; the default \`commitDelayMs\` 5 then only adds its wait (the latency column), which is why 0 stays available for a camera that is never faster than the disk.
`;
  const file = writeReportSection(
    'reliability',
    'Reliability: crash injection, faults, flapping cameras, fuzzing, soak',
    { id: 'group-commit', title: 'Group commit: the file outbox alone', command: `npm run bench:outbox -- --results ${N} --rounds ${ROUNDS} --invocations ${invs.length} --window ${WINDOW}`, load: `${loadBefore} → ${loadNow()}` },
    body,
  );
  console.log(`wrote ${file}`);
}
