/** Shared bits of the benchmarks: machine description, timing, the PyTorch side, report writing. */
import { cpus, loadavg, totalmem, platform, release, tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const repo = fileURLToPath(new URL('../', import.meta.url));
export const PYTHON = '/usr/bin/python3';

export function machine(): string {
  const c = cpus();
  return `${c[0]?.model.trim() ?? 'unknown CPU'}, ${c.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${platform()} ${release()}, Node ${process.versions.node}`;
}

export function ortVersion(): string {
  return (JSON.parse(readFileSync(join(repo, 'node_modules/onnxruntime-node/package.json'), 'utf8')) as { version: string }).version;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Run a tools/reference script with Debian's python; fail with an install hint when torch is absent. */
export function python(script: string, args: string[]): string {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} not found: apt-get install python3-torch python3-onnx`);
  try {
    execFileSync(PYTHON, ['-c', 'import torch, onnx'], { stdio: 'pipe' });
  } catch {
    throw new Error('PyTorch is missing for the reference side: apt-get install -y python3-torch python3-onnx libopenblas0-pthread');
  }
  return execFileSync(PYTHON, [join(repo, 'tools/reference', script), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
}

/** The last JSON line a reference script printed. */
export function lastJson<T>(out: string): T {
  const line = out.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) throw new Error(`no JSON line in:\n${out}`);
  return JSON.parse(line) as T;
}

export function writeReport(name: string, title: string, command: string, body: string): string {
  const file = join(repo, 'docs/bench', `${name}.md`);
  mkdirSync(dirname(file), { recursive: true });
  const text = `# ${title}\n\n- command: \`${command}\`\n- machine: ${machine()}\n- date: ${new Date().toISOString()}\n\n${body.trim()}\n`;
  writeFileSync(file, text);
  return file;
}

/** min / median / max of one figure over several invocations. */
export interface Spread {
  min: number;
  median: number;
  max: number;
  n: number;
}

export function spread(xs: number[]): Spread {
  if (xs.length === 0) throw new Error('spread of no values');
  return { min: Math.min(...xs), median: median(xs), max: Math.max(...xs), n: xs.length };
}

/** "0.997 / 1.042 / 1.047" (min / median / max), the form every ratio column uses. */
export function fmtSpread(s: Spread, digits = 3): string {
  return s.n === 1 ? s.median.toFixed(digits) : `${s.min.toFixed(digits)} / ${s.median.toFixed(digits)} / ${s.max.toFixed(digits)}`;
}

const CHILD_ENV = 'EDGEPROMPT_BENCH_INVOCATION';
const RESULT_ENV = 'EDGEPROMPT_BENCH_RESULT';

/** True inside an invocation started by `acrossInvocations` (skip the parent's one-off work there). */
export const isInvocationChild = (): boolean => process.env[CHILD_ENV] !== undefined;

/**
 * Runs `measure` in `n` fresh processes of this same script, one after the other, and returns
 * their results. A ratio measured in one process can mislead on a shared VM: the machine's speed
 * drifts between invocations more than within one (one quiet re-run moved fused ÷ bare from
 * 0.951 to 0.997–1.047), so every ratio bench reports the spread over invocations. Inside a
 * child this measures, hands the result to the parent, and exits.
 */
export async function acrossInvocations<T>(n: number, measure: () => Promise<T>): Promise<T[]> {
  if (isInvocationChild()) finishInvocation(await measure());
  return spawnInvocations<T>(n);
}

/** In a child invocation: hand `result` to the parent and exit. */
export function finishInvocation(result: unknown): never {
  writeFileSync(process.env[RESULT_ENV]!, JSON.stringify(result));
  process.exit(0);
}

/** Runs this script `n` times as child invocations (with `args`, default the same) and returns what each finished with. */
export function spawnInvocations<T>(n: number, args: readonly string[] = process.argv.slice(2)): T[] {
  const dir = mkdtempSync(join(tmpdir(), 'edgeprompt-bench-'));
  try {
    const results: T[] = [];
    for (let k = 0; k < n; k++) {
      console.log(`— invocation ${k + 1} of ${n}`);
      const file = join(dir, `${k}.json`);
      execFileSync(process.execPath, [...process.execArgv, process.argv[1]!, ...args], { stdio: 'inherit', env: { ...process.env, [CHILD_ENV]: String(k), [RESULT_ENV]: file } });
      results.push(JSON.parse(readFileSync(file, 'utf8')) as T);
    }
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Median milliseconds per call of each runner, measured in interleaved rounds (every runner once
 * per round, `runs` calls each) so a drift of the machine's speed within the invocation hits all
 * of them alike; `warmup` calls each first.
 */
export async function timeInterleaved(runners: readonly (() => Promise<unknown>)[], rounds: number, runs: number, warmup = 3): Promise<number[]> {
  for (let i = 0; i < warmup; i++) for (const run of runners) await run();
  const times = runners.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++)
    for (const [k, run] of runners.entries()) {
      const t0 = performance.now();
      for (let i = 0; i < runs; i++) await run();
      times[k]!.push((performance.now() - t0) / runs);
    }
  return times.map(median);
}

/** "load 3.1 / 2.8 / 2.5 (1 / 5 / 15 min)": other work on the machine, to print beside a figure. */
export function loadNow(): string {
  const [a, b, c] = loadavg();
  return `${a!.toFixed(1)} / ${b!.toFixed(1)} / ${c!.toFixed(1)}`;
}

/**
 * Writes one section of a report that several benches share (docs/bench/reliability.md: crash,
 * faults, flaps, fuzz, soak), leaving the other sections as they are. Each section carries its own
 * command, machine, date and load, since they are run separately.
 */
export function writeReportSection(name: string, title: string, section: { id: string; title: string; command: string; load: string }, body: string): string {
  const file = join(repo, 'docs/bench', `${name}.md`);
  mkdirSync(dirname(file), { recursive: true });
  const begin = `<!-- section:${section.id} -->`;
  const end = `<!-- /section:${section.id} -->`;
  const block = `${begin}\n## ${section.title}\n\n- command: \`${section.command}\`\n- machine: ${machine()}\n- date: ${new Date().toISOString()}\n- load average (1 / 5 / 15 min) before → after: ${section.load}\n\n${body.trim()}\n${end}`;
  let text = existsSync(file) ? readFileSync(file, 'utf8') : `# ${title}\n`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) text = text.slice(0, i) + block + text.slice(j + end.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, text);
  return file;
}
