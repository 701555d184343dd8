/**
 * What ORT's CPU EP actually runs in fp16, found by trying: a one-op fp16 graph is loaded and
 * the optimised graph read back. Where the CPU EP has no fp16 kernel, ORT's InsertCastTransformer
 * wraps the op in Casts to float. CPU_FP16_OPS must match (on x64; ARM builds have more fp16
 * kernels), so an ORT upgrade that adds kernels shows up here.
 */
import test from 'ava';
import * as ort from 'onnxruntime-node';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeGraph, encodeModel, type NodeSpec, type TensorSpec } from '../compiler/ops/onnx-proto.ts';
import { toF16 } from '../compiler/ops/host-tensor.ts';
import { CPU_FP16_OPS } from '../compiler/export/precision/index.ts';

const half = (name: string, shape: number[], v: number): TensorSpec => {
  const bits = toF16(new Float32Array(shape.reduce((p, d) => p * d, 1)).fill(v));
  return { name, dtype: 'float16', shape, raw: new Uint8Array(bits.buffer) };
};
const PROBES: Record<string, { node: NodeSpec; inits?: TensorSpec[] }> = {
  MatMul: { node: { op: 'MatMul', inputs: ['x', 'w'], outputs: ['y'], attrs: {} }, inits: [half('w', [8, 8], 0.1)] },
  Add: { node: { op: 'Add', inputs: ['x', 'x'], outputs: ['y'], attrs: {} } },
  Mul: { node: { op: 'Mul', inputs: ['x', 'x'], outputs: ['y'], attrs: {} } },
  Div: { node: { op: 'Div', inputs: ['x', 'x'], outputs: ['y'], attrs: {} } },
  Erf: { node: { op: 'Erf', inputs: ['x'], outputs: ['y'], attrs: {} } },
  Softmax: { node: { op: 'Softmax', inputs: ['x'], outputs: ['y'], attrs: { axis: -1 } } },
  LayerNormalization: { node: { op: 'LayerNormalization', inputs: ['x', 'g', 'b'], outputs: ['y'], attrs: { axis: -1, epsilon: 1e-6 } }, inits: [half('g', [8], 1), half('b', [8], 0)] },
};

test('ORT CPU EP fp16 kernels: LayerNormalization runs in fp16, MatMul/Add/Mul/Div/Erf/Softmax get Casts to float', async (t) => {
  if (process.arch !== 'x64') return t.pass('fp16 kernel coverage differs on ARM; CPU_FP16_OPS describes x64');
  const dir = mkdtempSync(join(tmpdir(), 'ep-fp16-'));
  try {
    const native: string[] = [];
    for (const [op, p] of Object.entries(PROBES)) {
      const file = join(dir, `${op}.onnx`);
      const model = encodeModel({ name: op, nodes: [p.node], initializers: p.inits ?? [], inputs: [{ name: 'x', dtype: 'float16', shape: [2, 8] }], outputs: [{ name: 'y', dtype: 'float16', shape: [2, 8] }] });
      const s = await ort.InferenceSession.create(model, { logSeverityLevel: 3, graphOptimizationLevel: 'all', optimizedModelFilePath: file });
      await s.release();
      if (!decodeGraph(new Uint8Array(readFileSync(file))).nodes.some((n) => n.op === 'Cast')) native.push(op);
    }
    t.log(`fp16 kernels on this CPU EP: ${native.join(', ') || 'none'}`);
    t.deepEqual(native, [...CPU_FP16_OPS]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
