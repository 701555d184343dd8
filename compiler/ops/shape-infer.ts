/**
 * Static shape rules for the graph recorder. Dimensions are numbers or 'N' (the dynamic
 * batch); anything else symbolic is rejected, which keeps exported graphs simple and lets a
 * bad model definition fail at export with the op and shapes named.
 */
import type { Dim } from './ops.ts';
import { axisOf } from './ops.ts';
import { CompilerError } from './errors.ts';
import { fmtShape } from './host-tensor.ts';

const fail = (op: string, why: string) => new CompilerError('BAD_SHAPE', `${op}: ${why}`);

export function broadcast(op: string, a: readonly Dim[], b: readonly Dim[]): Dim[] {
  const r = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    if (x === y || y === 1) out.push(x);
    else if (x === 1) out.push(y);
    else throw fail(op, `cannot broadcast ${fmtShape(a)} with ${fmtShape(b)}`);
  }
  return out;
}

export function matMulShape(a: readonly Dim[], b: readonly Dim[]): Dim[] {
  if (a.length < 2 || b.length < 2) throw fail('matMul', `operands must be at least 2-D, got ${fmtShape(a)} and ${fmtShape(b)}`);
  const k1 = a[a.length - 1]!;
  const k2 = b[b.length - 2]!;
  if (k1 !== k2) throw fail('matMul', `inner dimensions differ: ${fmtShape(a)} × ${fmtShape(b)}`);
  const batch = broadcast('matMul', a.slice(0, -2), b.slice(0, -2));
  return [...batch, a[a.length - 2]!, b[b.length - 1]!];
}

/** ONNX Reshape semantics: 0 copies the input dim, -1 is inferred. 'N' must stay a factor of exactly one output dim. */
export function reshapeShape(x: readonly Dim[], spec: readonly number[]): Dim[] {
  const out: (Dim | -1)[] = spec.map((d, i) => {
    if (d === 0) {
      if (i >= x.length) throw fail('reshape', `0 at index ${i} but input ${fmtShape(x)} has rank ${x.length}`);
      return x[i]!;
    }
    return d;
  });
  const nIn = x.filter((d) => d === 'N').length;
  const nOut = out.filter((d) => d === 'N').length;
  const staticIn = x.reduce<number>((p, d) => (d === 'N' ? p : p * d), 1);
  const staticOut = out.reduce<number>((p, d) => (d === 'N' || d === -1 ? p : p * d), 1);
  const inferred = out.indexOf(-1);
  if (out.filter((d) => d === -1).length > 1) throw fail('reshape', `more than one -1 in ${fmtShape(spec)}`);
  if (inferred >= 0) {
    if (nIn === nOut) {
      if (staticIn % staticOut) throw fail('reshape', `cannot reshape ${fmtShape(x)} to ${fmtShape(spec)}`);
      out[inferred] = staticIn / staticOut;
    } else if (nIn === nOut + 1 && staticIn === staticOut) {
      out[inferred] = 'N';
    } else {
      throw fail('reshape', `cannot infer -1 in ${fmtShape(spec)} from ${fmtShape(x)} (the batch must stay a whole dimension)`);
    }
  } else if (nIn !== nOut || staticIn !== staticOut) {
    throw fail('reshape', `cannot reshape ${fmtShape(x)} to ${fmtShape(spec)}`);
  }
  return out as Dim[];
}

export function transposeShape(x: readonly Dim[], perm: readonly number[]): Dim[] {
  if (perm.length !== x.length || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw fail('transpose', `perm ${fmtShape(perm)} is not a permutation of rank ${x.length}`);
  }
  return perm.map((p) => x[p]!);
}

export function concatShape(xs: readonly (readonly Dim[])[], axis: number): Dim[] {
  const r = xs[0]!.length;
  const a = axisOf(axis, r);
  const out = [...xs[0]!];
  let total = 0;
  for (const s of xs) {
    if (s.length !== r || s.some((d, i) => i !== a && d !== out[i])) {
      throw fail('concat', `shapes ${xs.map((q) => fmtShape(q)).join(', ')} differ off axis ${axis}`);
    }
    const d = s[a]!;
    if (d === 'N') throw fail('concat', 'cannot concatenate along the batch dimension');
    total += d;
  }
  out[a] = total;
  return out;
}

export function sliceShape(x: readonly Dim[], axis: number, start: number, end: number): Dim[] {
  const a = axisOf(axis, x.length);
  const d = x[a]!;
  if (d === 'N') throw fail('slice', 'cannot slice the batch dimension');
  if (start < 0 || end > d || start >= end) throw fail('slice', `range [${start}, ${end}) out of [0, ${d}) on axis ${axis} of ${fmtShape(x)}`);
  const out = [...x];
  out[a] = end - start;
  return out;
}

export function reduceShape(x: readonly Dim[], axes: readonly number[], keepDims: boolean): Dim[] {
  const set = new Set(axes.map((a) => axisOf(a, x.length)));
  const out: Dim[] = [];
  x.forEach((d, i) => {
    if (!set.has(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}
