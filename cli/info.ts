import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { CompilerError } from '../compiler/ops/errors.ts';
import { parseSafetensors } from '../compiler/backbones/safetensors.ts';
import { summarizeModel } from '../compiler/ops/onnx-proto.ts';
import { fmtShape, numel } from '../compiler/ops/host-tensor.ts';
import { guessVitArch } from '../compiler/backbones/vit-guess.ts';
import { guessClipArch } from '../compiler/backbones/clip-weights.ts';

export async function infoCommand(file: string): Promise<void> {
  if (!existsSync(file)) throw new CompilerError('FILE_NOT_FOUND', `${file}: no such file`);
  const bytes = readFileSync(file);
  const size = `${(statSync(file).size / 1e6).toFixed(2)} MB`;
  const ext = extname(file).toLowerCase();
  if (ext === '.safetensors') return describeSafetensors(file, bytes, size);
  if (ext === '.onnx') return describeOnnx(file, bytes, size);
  throw new CompilerError('BAD_FILE', `${file}: unknown file type "${ext}" (expected .safetensors or .onnx)`);
}

function describeSafetensors(file: string, bytes: Uint8Array, size: string): void {
  const { tensors, metadata } = parseSafetensors(bytes, file);
  let params = 0;
  for (const t of tensors.values()) params += numel(t.shape);
  console.log(`${file}: safetensors, ${size}, ${tensors.size} tensors, ${params.toLocaleString('en-US')} parameters`);
  const guess = guessClipArch(tensors) ?? guessVitArch(tensors);
  if (guess) console.log(`looks like: ${guess}`);
  if (Object.keys(metadata).length) console.log(`metadata: ${JSON.stringify(metadata)}`);
  const rows = [...tensors.entries()].slice(0, 40);
  for (const [k, t] of rows) console.log(`  ${k.padEnd(36)} ${fmtShape(t.shape)}`);
  if (tensors.size > rows.length) console.log(`  … ${tensors.size - rows.length} more`);
}

function describeOnnx(file: string, bytes: Uint8Array, size: string): void {
  let s;
  try {
    s = summarizeModel(bytes);
  } catch (e) {
    throw new CompilerError('BAD_FILE', `${file}: not a readable ONNX model (${(e as Error).message})`);
  }
  console.log(`${file}: ONNX, ${size}, IR ${s.irVersion}, opset ${s.opsets.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).join(', ')}, producer ${s.producer || '?'}`);
  for (const v of s.inputs) console.log(`  input  ${v.name}: ${v.dtype} ${fmtShape(v.shape)}`);
  for (const v of s.outputs) console.log(`  output ${v.name}: ${v.dtype} ${fmtShape(v.shape)}`);
  console.log(`  ${s.initializers} initializers, ${s.parameters.toLocaleString('en-US')} values, ${(s.initializerBytes / 1e6).toFixed(2)} MB`);
  const ops = Object.entries(s.opCounts).sort((a, b) => b[1] - a[1]);
  console.log(`  ${ops.reduce((p, [, n]) => p + n, 0)} nodes: ${ops.map(([k, n]) => `${k}×${n}`).join(' ')}`);
  if (Object.keys(s.metadata).length) console.log(`  metadata: ${JSON.stringify(s.metadata)}`);
}
