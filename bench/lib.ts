/** Shared bits of the benchmarks: machine description, timing, the PyTorch side, report writing. */
import { cpus, totalmem, platform, release } from 'node:os';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
