// Crash injection into the file outbox (docs/mqtt.md "Group commit"; issue: reliability hardening).
// Each run starts outbox-crash-child.ts in a fresh process on a directory, lets it work, and kills
// it with SIGKILL at a chosen write boundary (a crashHook in the outbox), in the middle of a write
// (a prefix of the bytes reaches the file, then SIGKILL), or after a random delay from outside
// (which also lands inside open and its recovery rewrite). Runs are chained: the next run of a
// chain reopens what the last one left, so crashes during recovery are covered too. After each
// death a copy of the directory is opened and held to the contract:
//   - no corrupt record: no unreadable line, no header missing, every held entry byte-exact;
//   - nothing accepted is lost: an accepted (put resolved) entry that was not acked is held, or was
//     dropped by the bound (then every older held entry is one that was acked, and `dropped` counts it);
//   - ids are never reused: nextId is past every accepted id; the epoch never changes.
// A torn last line (a write cut short) is expected after a kill mid-write and is counted, not a fault.
// Used by test/outbox-crash.test.ts (CI-sized) and bench/crash.ts (npm run bench:crash, ≥ 1000 runs).

import { build } from 'esbuild';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mixSeed, mulberry32, type Rng } from '../../devices/rng.ts';
import { openFileOutbox, type CrashPoint } from '../../runtime/mqtt/outbox-file.ts';
import { crashPayload, crashTopic, type ChildPlan } from './outbox-crash-plan.ts';

export const CRASH_POINTS: readonly CrashPoint[] = ['group:write', 'group:written', 'group:accepted', 'compact:write', 'compact:synced', 'compact:renamed', 'compact:done'];

export interface CrashOptions {
  runs: number;
  /** Runs per directory before it is closed cleanly and checked a last time. Default 10. */
  chainLength?: number;
  /** Children alive at once. Default 2. */
  parallel?: number;
  seed?: number;
  onRun?: (done: number, total: number) => void;
}

export interface CrashStats {
  runs: number;
  chains: number;
  /** How each run died: hook:<point>, torn:<point>, external (random delay), fallback (planned point not reached in time). */
  kills: Record<string, number>;
  accepted: number;
  acked: number;
  /** Accepted, not acked, gone: dropped by the bound (allowed, and counted by the outbox). */
  droppedByBound: number;
  /** Held after reopening though acked before the crash (a lost ack record): sent again, flagged by seq. */
  resentAfterAck: number;
  /** Held after reopening though never confirmed (the group was being written): delivered, never lost. */
  unconfirmedKept: number;
  tornTails: number;
  corrupt: number;
  lost: number;
  violations: string[];
  ms: number;
}

let childBundle: Promise<string> | null = null;

/** The child as one .mjs (node starts it in ~50 ms instead of tsx's ~400 ms). */
function bundleChild(): Promise<string> {
  childBundle ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ep-crash-child-'));
    const outfile = join(dir, 'child.mjs');
    await build({
      entryPoints: [join(import.meta.dirname, 'outbox-crash-child.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile,
      logLevel: 'error',
      banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    });
    process.once('exit', () => void rm(dir, { recursive: true, force: true }));
    return outfile;
  })();
  return childBundle;
}

interface Plan extends ChildPlan {
  /** For mode none, or a fallback: ms after the start (fromSpawn) or after R. */
  killAfterMs: number;
  fromSpawn: boolean;
  label: string;
}

function planRun(rng: Rng, dir: string, seed: number): Plan {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rng() * xs.length)]!;
  const base = {
    dir,
    seed,
    maxEntries: pick([40, 300, 100_000]),
    compactMinBytes: pick([2048, 16_384, 1 << 20]),
    commitDelayMs: pick([0, 1, 5]),
  };
  const r = rng();
  // compact:* is reached once per open (the recovery rewrite) and at each compaction: early
  // occurrences land in recovery, later ones in a compaction.
  const occurrence = (p: CrashPoint) => 1 + Math.floor(rng() * (p.startsWith('compact') ? 4 : 25));
  if (r < 0.45) {
    const point = pick(CRASH_POINTS);
    return { ...base, mode: 'hook', point, occurrence: occurrence(point), killAfterMs: 800, fromSpawn: false, label: `hook:${point}` };
  }
  if (r < 0.65) {
    const point: CrashPoint = rng() < 0.8 ? 'group:write' : 'compact:write';
    return { ...base, mode: 'torn', point, occurrence: occurrence(point), tornFraction: rng(), killAfterMs: 800, fromSpawn: false, label: `torn:${point}` };
  }
  const fromSpawn = rng() < 0.3;
  return { ...base, mode: 'none', killAfterMs: Math.floor(rng() * (fromSpawn ? 200 : 300)), fromSpawn, label: 'external' };
}

interface Seen {
  accepted: Set<number>;
  acked: Set<number>;
  epoch: string | null;
}

async function runChild(plan: Plan): Promise<{ lines: string[]; stderr: string; signal: NodeJS.Signals | null; code: number | null; hit: boolean }> {
  const child = spawn(process.execPath, [await bundleChild(), JSON.stringify(plan)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let buf = '';
  let stderr = '';
  let timer: NodeJS.Timeout | null = null;
  let hit = false;
  const arm = () => (timer = setTimeout(() => child.kill('SIGKILL'), plan.killAfterMs));
  if (plan.mode === 'none' && plan.fromSpawn) arm();
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      if (l.startsWith('R ') && !(plan.mode === 'none' && plan.fromSpawn)) arm();
      if (l.startsWith('X ')) hit = true;
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (stderr += d));
  // A child that hangs on open would otherwise hang the whole run.
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  if (timer) clearTimeout(timer);
  clearTimeout(guard);
  return { lines, stderr, signal, code, hit };
}

/**
 * Opens a copy of `dir` and holds it to the contract; `seen` grows by what it finds held. Returns
 * how many accepted, unacked entries are gone (dropped by the bound, once the checks passed).
 */
async function verify(dir: string, seen: Seen, stats: CrashStats, where: string): Promise<number> {
  const copy = `${dir}.verify`;
  await rm(copy, { recursive: true, force: true });
  if (existsSync(dir)) await cp(dir, copy, { recursive: true }); // (a kill before mkdir leaves none)
  await rm(join(copy, 'outbox.lock'), { force: true });
  const hadLog = existsSync(join(copy, 'outbox.log'));
  const warnings: string[] = [];
  const fail = (m: string) => stats.violations.push(`${where}: ${m}`);
  let missing = 0;
  try {
    const o = await openFileOutbox({ dir: copy, log: { warn: (_x, m) => warnings.push(m), info: () => {} } });
    try {
      for (const w of warnings) {
        if (/torn last line/.test(w)) stats.tornTails++;
        else {
          stats.corrupt++;
          fail(`corrupt log: ${w}`);
        }
      }
      if (hadLog && seen.epoch !== null && o.epoch !== seen.epoch) fail(`epoch changed ${seen.epoch} -> ${o.epoch}`);
      if (hadLog) seen.epoch ??= o.epoch;
      const held = [...o.entries()];
      const heldIds = new Set(held.map((e) => e.id));
      for (const e of held) {
        if (e.topic !== crashTopic(e.id) || !e.payload.equals(crashPayload(e.id))) {
          stats.corrupt++;
          fail(`entry ${e.id} damaged: ${e.topic} ${e.payload.toString().slice(0, 60)}`);
        }
        if (seen.acked.has(e.id)) stats.resentAfterAck++;
        else if (!seen.accepted.has(e.id)) stats.unconfirmedKept++;
      }
      const minHeld = held.length ? held[0]!.id : Infinity;
      for (const id of seen.accepted) {
        if (seen.acked.has(id) || heldIds.has(id)) continue;
        missing++;
        // Dropped by the bound? Then it was the oldest held: nothing older may be held unless it was acked (and came back).
        if (id > minHeld && held.some((e) => e.id < id && !seen.acked.has(e.id))) {
          stats.lost++;
          fail(`accepted entry ${id} lost (entries older than it are still held)`);
        }
      }
      if (missing > o.dropped) {
        stats.lost += missing - o.dropped;
        fail(`${missing} accepted entries missing but only ${o.dropped} counted as dropped`);
      }
      const maxAccepted = Math.max(-1, ...seen.accepted);
      if (o.nextId <= maxAccepted) fail(`nextId ${o.nextId} would reuse accepted id ${maxAccepted}`);
      for (const id of heldIds) seen.accepted.add(id); // held now = delivered later: it must stay
      // The reopened outbox works: one more put survives a clean close.
      const e = await o.put({ topic: crashTopic(o.nextId), payload: crashPayload(o.nextId) });
      if (!o.has(e.id)) fail('put after reopening is not held');
    } finally {
      await o.close();
    }
  } catch (e) {
    fail(`reopening failed: ${(e as Error).message}`);
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
  return missing;
}

async function runChain(chain: number, runs: number, seed: number, stats: CrashStats, tick: () => void): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'ep-crash-'));
  const dir = join(root, 'outbox');
  const seen: Seen = { accepted: new Set(), acked: new Set(), epoch: null };
  const rng = mulberry32(mixSeed(seed, chain));
  try {
    for (let k = 0; k < runs; k++) {
      const plan = planRun(rng, dir, mixSeed(seed, chain, k));
      const r = await runChild(plan);
      const where = `chain ${chain} run ${k} (${plan.label}, seed ${plan.seed})`;
      if (r.signal !== 'SIGKILL') stats.violations.push(`${where}: child ended with ${r.code ?? r.signal}, not SIGKILL: ${r.stderr.slice(-500)}`);
      const label = plan.mode === 'none' ? 'external' : r.hit ? plan.label : 'fallback';
      stats.kills[label] = (stats.kills[label] ?? 0) + 1;
      for (const l of r.lines) {
        const id = Number(l.slice(2));
        if (l.startsWith('P ')) {
          seen.accepted.add(id);
          stats.accepted++;
        } else if (l.startsWith('A ')) {
          seen.acked.add(id);
          stats.acked++;
        }
      }
      await verify(dir, seen, stats, where);
      stats.runs++;
      tick();
    }
    // The chain ends with a clean open and close of the real directory, held to the same rules.
    await rm(join(dir, 'outbox.lock'), { force: true });
    stats.droppedByBound += await verify(dir, seen, stats, `chain ${chain} final`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

export async function runCrashInjection(o: CrashOptions): Promise<CrashStats> {
  const t0 = performance.now();
  const chainLength = o.chainLength ?? 10;
  const chains = Math.ceil(o.runs / chainLength);
  const stats: CrashStats = {
    runs: 0, chains, kills: {}, accepted: 0, acked: 0, droppedByBound: 0, resentAfterAck: 0,
    unconfirmedKept: 0, tornTails: 0, corrupt: 0, lost: 0, violations: [], ms: 0,
  };
  await bundleChild();
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < chains) {
      const c = next++;
      const runs = Math.min(chainLength, o.runs - c * chainLength);
      await runChain(c, runs, o.seed ?? 1, stats, () => o.onRun?.(++done, o.runs));
    }
  };
  await Promise.all(Array.from({ length: o.parallel ?? 2 }, worker));
  stats.ms = performance.now() - t0;
  return stats;
}
