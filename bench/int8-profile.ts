/**
 * Where int8 time goes on ORT's CPU EP (issue 20 §9): ViT-Ti/16 at 224 in fp32, int8 (weight
 * MatMuls) and int8 with the attention product a·v dynamically quantized, each profiled by ORT
 * (`enableProfiling`: per-node kernel time) over the same interleaved runs. Sums kernel time per op
 * type per run, and gives the bound on int8's speed-up if every integer MatMul cost nothing (fp32
 * total ÷ what int8 spends outside its integer kernels): the part int8 cannot touch on this EP.
 * Reads the models bench:precision writes to .cache/bench/precision (run that first).
 *
 *   npm run bench:int8-profile [-- --rounds 20]
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { loadNow, median, ortVersion, repo, writeReport } from './lib.ts';

const { values: f } = parseArgs({ options: { rounds: { type: 'string', default: '20' } } });
const rounds = Number(f.rounds);
const loadBefore = loadNow();
const variants = [
  { key: 'fp32', label: 'fp32' },
  { key: 'int8', label: 'int8' },
  { key: 'int8-attn', label: 'int8 + dynamic a·v' },
] as const;
const cache = join(repo, '.cache/bench/precision');
const work = mkdtempSync(join(tmpdir(), 'ep-int8-profile-'));
const image = new ort.Tensor('uint8', Uint8Array.from({ length: 224 * 224 * 3 }, (_, i) => (i * 37) % 251), [1, 224, 224, 3]);

interface Event { cat: string; name: string; dur: number; args?: { op_name?: string } }
type Key = (typeof variants)[number]['key'];
interface Profile { total: number; byOp: Map<string, number> }
const INTEGER = new Set(['MatMulIntegerToFloat', 'MatMulInteger', 'QGemm', 'DynamicQuantizeMatMul', 'QLinearMatMul']);
const ms = (us: number) => (us / 1000).toFixed(2);

/** Per op type: median over the timed runs of the kernel µs that op type took in one run; total: median model_run. */
function read(prefix: string): Profile {
  const file = readdirSync(work).find((x) => x.startsWith(`${prefix}_`) && x.endsWith('.json'));
  if (!file) throw new Error(`no ORT profile for ${prefix} in ${work}`);
  const events = JSON.parse(readFileSync(join(work, file), 'utf8')) as Event[];
  const runs: Map<string, number>[] = [];
  const totals: number[] = [];
  let cur: Map<string, number> | null = null;
  for (const e of events) {
    if (e.cat === 'Session' && e.name === 'model_run') {
      totals.push(e.dur);
      cur = null;
    } else if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) {
      if (!cur) runs.push((cur = new Map()));
      const op = e.args?.op_name ?? '?';
      cur.set(op, (cur.get(op) ?? 0) + e.dur);
    }
  }
  // A run's node events come before its model_run event; the first 5 runs are the warm-up.
  const timed = runs.slice(5);
  const ops = new Set(timed.flatMap((m) => [...m.keys()]));
  return { total: median(totals.slice(5)), byOp: new Map([...ops].map((op) => [op, median(timed.map((m) => m.get(op) ?? 0))])) };
}

/** The three models profiled over the same interleaved runs at one intra-op thread count. */
async function profile(threads: number): Promise<Record<Key, Profile>> {
  const sessions = await Promise.all(
    variants.map((v) =>
      ort.InferenceSession.create(readFileSync(join(cache, `tiny.${v.key}.onnx`)), {
        intraOpNumThreads: threads,
        graphOptimizationLevel: 'all',
        logSeverityLevel: 3,
        enableProfiling: true,
        profileFilePrefix: join(work, `${v.key}.t${threads}`),
      }),
    ),
  );
  for (let i = 0; i < 5; i++) for (const s of sessions) await s.run({ image }); // warm-up, also profiled: dropped in read()
  for (let r = 0; r < rounds; r++) for (const s of sessions) await s.run({ image });
  for (const s of sessions) s.endProfiling();
  await Promise.all(sessions.map((s) => s.release()));
  return Object.fromEntries(variants.map((v) => [v.key, read(`${v.key}.t${threads}`)])) as Record<Key, Profile>;
}

function section(threads: number, prof: Record<Key, Profile>): string {
  const kernels = (k: Key) => [...prof[k].byOp.values()].reduce((a, b) => a + b, 0);
  const integer = (k: Key) => [...prof[k].byOp].filter(([op]) => INTEGER.has(op)).reduce((a, [, v]) => a + v, 0);
  const peak = (op: string) => Math.max(...variants.map((v) => prof[v.key].byOp.get(op) ?? 0));
  const ops = [...new Set(variants.flatMap((v) => [...prof[v.key].byOp.keys()]))].sort((a, b) => peak(b) - peak(a));
  const rows = ops.map((op) => `| ${op}${INTEGER.has(op) ? ' (integer)' : ''} | ${variants.map((v) => { const x = prof[v.key].byOp.get(op); return x === undefined ? '—' : `${ms(x)} (${((100 * x) / kernels(v.key)).toFixed(0)} %)`; }).join(' | ')} |`);
  const replaceable = ['MatMul', 'FusedMatMul', 'Gemm'].reduce((a, op) => a + (prof.fp32.byOp.get(op) ?? 0), 0);
  const line = (k: 'int8' | 'int8-attn', label: string) =>
    `- ${label}: ${(kernels('fp32') / kernels(k)).toFixed(2)}× fp32 in kernel time, ${(prof.fp32.total / prof[k].total).toFixed(2)}× per run; its integer kernels take ${ms(integer(k))} of ${ms(kernels(k))} ms kernel time, the float kernels around them ${ms(kernels(k) - integer(k))} ms, and the run ${ms(prof[k].total - kernels(k))} ms more outside any kernel. With integer MatMuls that cost nothing it could reach at most ${(kernels('fp32') / (kernels(k) - integer(k))).toFixed(2)}× in kernel time, ${(prof.fp32.total / (prof[k].total - integer(k))).toFixed(2)}× per run.`;
  return `### ${threads} intra-op thread${threads > 1 ? 's' : ''}

| op type | ${variants.map((v) => v.label).join(' | ')} |
|---|---|---|---|
${rows.join('\n')}
| **kernel time, sum** | ${variants.map((v) => `**${ms(kernels(v.key))}**`).join(' | ')} |
| **run (model_run)** | ${variants.map((v) => `**${ms(prof[v.key].total)}**`).join(' | ')} |
| run outside any kernel | ${variants.map((v) => ms(prof[v.key].total - kernels(v.key))).join(' | ')} |

- fp32: the MatMuls and Gemms int8 can replace take ${ms(replaceable)} of ${ms(kernels('fp32'))} ms kernel time (${((100 * replaceable) / kernels('fp32')).toFixed(0)} %).
${line('int8', 'int8')}
${line('int8-attn', 'int8 + dynamic a·v')}
`;
}

const profiles: [number, Record<Key, Profile>][] = [];
for (const threads of [1, 2]) profiles.push([threads, await profile(threads)]);
rmSync(work, { recursive: true, force: true });

const file = writeReport(
  'int8-profile',
  'int8 on ORT\'s CPU EP: where the time goes (ViT-Ti/16, 224)',
  `npm run bench:int8-profile -- --rounds ${rounds}`,
  `onnxruntime-node ${ortVersion()} CPU EP, graph optimization 'all', batch 1; the three models bench:precision built (random-weight ViT-Ti/16 at 224, uint8 NHWC input), profiled by ORT (\`enableProfiling\`) over ${rounds} interleaved runs each after 5 warm-up runs, at 1 and at 2 intra-op threads. Each op cell: median over runs of the kernel time of that op type in one run, ms (share of that model's kernel time). "run" is ORT's model_run event: the kernels plus what ORT does between them (thread-pool hand-offs, allocation, and on a busy machine the time its threads wait for a core). Measured on a shared 2-core machine (load average before → after: ${loadBefore} → ${loadNow()}): the time outside kernels grows with the load, kernel times and their shares much less.

${profiles.map(([t, p]) => section(t, p)).join('\n')}
`,
);
console.log(`wrote ${file}`);
