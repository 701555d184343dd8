/**
 * A float64 reference interpreter for GraphSpec, for gradient checks: finite differences in
 * float64 are accurate to ~1e-9, so a backward rule can be held to ~1e-6 instead of the ~1e-2
 * float32 differences allow. Plain loops, written from the ONNX operator specs, for the ops the
 * recorder and the backward rules emit; int64 tensors are held as float64 (exact below 2⁵³).
 */
import type { GraphSpec, NodeSpec } from '../../compiler/ops/onnx-proto.ts';

export interface T64 {
  shape: number[];
  data: Float64Array;
}

const numel = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);
const strides = (s: readonly number[]) => {
  const st = new Array<number>(s.length).fill(1);
  for (let i = s.length - 2; i >= 0; i--) st[i] = st[i + 1]! * s[i + 1]!;
  return st;
};
const t64 = (shape: number[], data?: Float64Array): T64 => ({ shape, data: data ?? new Float64Array(numel(shape)) });
const ax = (a: number, r: number) => (a < 0 ? a + r : a);

function bshape(shapes: number[][]): number[] {
  const r = Math.max(...shapes.map((s) => s.length));
  return Array.from({ length: r }, (_, i) => Math.max(...shapes.map((s) => s[s.length - r + i] ?? 1)));
}

/** Offsets into each operand for every element of the broadcast output. */
function bcast(xs: T64[], out: number[], f: (vals: number[]) => number): T64 {
  const y = t64(out);
  const r = out.length;
  const sts = xs.map((x) => {
    const st = strides(x.shape);
    return out.map((d, i) => {
      const k = i - (r - x.shape.length);
      return k < 0 || x.shape[k] === 1 ? 0 : st[k]!;
    });
  });
  const idx = new Array<number>(r).fill(0);
  const vals = new Array<number>(xs.length);
  for (let e = 0; e < y.data.length; e++) {
    for (let j = 0; j < xs.length; j++) {
      let o = 0;
      for (let i = 0; i < r; i++) o += idx[i]! * sts[j]![i]!;
      vals[j] = xs[j]!.data[o]!;
    }
    y.data[e] = f(vals);
    for (let i = r - 1; i >= 0; i--) if (++idx[i]! < out[i]!) break; else idx[i] = 0;
  }
  return y;
}

function erf64(x: number): number {
  const s = Math.sign(x);
  const a = Math.abs(x);
  if (a < 3) {
    // Maclaurin series: 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1))
    let term = a;
    let sum = a;
    for (let n = 1; n < 200 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return (s * 2 * sum) / Math.sqrt(Math.PI);
  }
  // erfc continued fraction (Lentz), accurate for a ≥ 3
  let f = a;
  let C = a;
  let D = 0;
  for (let k = 1; k < 300; k++) {
    const an = k / 2;
    D = a + an * D;
    D = 1 / D;
    C = a + an / C;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return s * (1 - Math.exp(-a * a) / (f * Math.sqrt(Math.PI)));
}

function reduce(x: T64, axes: number[], keep: boolean, mean: boolean): T64 {
  const r = x.shape.length;
  const set = new Set((axes.length ? axes : x.shape.map((_, i) => i)).map((a) => ax(a, r)));
  const kshape = x.shape.map((d, i) => (set.has(i) ? 1 : d));
  const y = t64(kshape);
  const kst = strides(kshape);
  const idx = new Array<number>(r).fill(0);
  for (let e = 0; e < x.data.length; e++) {
    let o = 0;
    for (let i = 0; i < r; i++) if (!set.has(i)) o += idx[i]! * kst[i]!;
    y.data[o] = y.data[o]! + x.data[e]!;
    for (let i = r - 1; i >= 0; i--) if (++idx[i]! < x.shape[i]!) break; else idx[i] = 0;
  }
  if (mean) {
    const c = x.data.length / y.data.length;
    for (let i = 0; i < y.data.length; i++) y.data[i] = y.data[i]! / c;
  }
  return { shape: keep ? kshape : x.shape.filter((_, i) => !set.has(i)), data: y.data };
}

function transpose(x: T64, perm: number[]): T64 {
  const st = strides(x.shape);
  const out = perm.map((p) => x.shape[p]!);
  const y = t64(out);
  const idx = new Array<number>(out.length).fill(0);
  for (let e = 0; e < y.data.length; e++) {
    let o = 0;
    for (let i = 0; i < out.length; i++) o += idx[i]! * st[perm[i]!]!;
    y.data[e] = x.data[o]!;
    for (let i = out.length - 1; i >= 0; i--) if (++idx[i]! < out[i]!) break; else idx[i] = 0;
  }
  return y;
}

/** Copy a box [lo, lo+size) of x (per axis) into a new tensor, or add `src` into x's box when given. */
function box(x: T64, lo: number[], size: number[], src?: T64): T64 {
  const st = strides(x.shape);
  const y = src ?? t64(size);
  const idx = new Array<number>(size.length).fill(0);
  for (let e = 0; e < numel(size); e++) {
    let o = 0;
    for (let i = 0; i < size.length; i++) o += (idx[i]! + lo[i]!) * st[i]!;
    if (src) x.data[o] = src.data[e]!;
    else y.data[e] = x.data[o]!;
    for (let i = size.length - 1; i >= 0; i--) if (++idx[i]! < size[i]!) break; else idx[i] = 0;
  }
  return src ? x : y;
}

/** [outer, d, inner] view of one axis. */
function alongAxis(x: T64, axis: number, f: (get: (i: number) => number, set: (i: number, v: number) => void, d: number) => void): T64 {
  const a = ax(axis, x.shape.length);
  const d = x.shape[a]!;
  const inner = numel(x.shape.slice(a + 1));
  const outer = numel(x.shape.slice(0, a));
  const y = t64([...x.shape]);
  for (let o = 0; o < outer; o++)
    for (let n = 0; n < inner; n++) {
      const base = o * d * inner + n;
      f((i) => x.data[base + i * inner]!, (i, v) => (y.data[base + i * inner] = v), d);
    }
  return y;
}

const attr = (n: NodeSpec, k: string, d: number): number => {
  const v = n.attrs[k];
  return typeof v === 'number' ? v : v && typeof v === 'object' && !Array.isArray(v) ? v.float : d;
};
const ints = (t: T64 | undefined) => (t ? Array.from(t.data) : []);

function run(n: NodeSpec, xs: (T64 | undefined)[]): T64[] {
  const x = xs[0]!;
  const map = (f: (v: number) => number) => [t64([...x.shape], x.data.map(f))];
  switch (n.op) {
    case 'Identity': case 'Cast': return [x];
    case 'Neg': return map((v) => -v);
    case 'Exp': return map(Math.exp);
    case 'Log': return map(Math.log);
    case 'Sqrt': return map(Math.sqrt);
    case 'Erf': return map(erf64);
    case 'Sigmoid': return map((v) => 1 / (1 + Math.exp(-v)));
    case 'Add': case 'Sum': return [bcast(xs as T64[], bshape(xs.map((t) => t!.shape)), (v) => v.reduce((p, q) => p + q, 0))];
    case 'Sub': return [bcast(xs as T64[], bshape(xs.map((t) => t!.shape)), ([a, b]) => a! - b!)];
    case 'Mul': return [bcast(xs as T64[], bshape(xs.map((t) => t!.shape)), ([a, b]) => a! * b!)];
    case 'Div': return [bcast(xs as T64[], bshape(xs.map((t) => t!.shape)), ([a, b]) => a! / b!)];
    case 'MatMul': {
      const [A, B] = xs as [T64, T64];
      const M = A.shape.at(-2)!, K = A.shape.at(-1)!, N = B.shape.at(-1)!;
      const batch = bshape([A.shape.slice(0, -2), B.shape.slice(0, -2)]);
      // Broadcast the operands' batch dims by indexing each [.., M, K] matrix as a scalar of a batch tensor.
      const ia = bcast([{ shape: A.shape.slice(0, -2), data: Float64Array.from({ length: numel(A.shape.slice(0, -2)) }, (_, i) => i) }], batch, ([v]) => v!);
      const ib = bcast([{ shape: B.shape.slice(0, -2), data: Float64Array.from({ length: numel(B.shape.slice(0, -2)) }, (_, i) => i) }], batch, ([v]) => v!);
      const y = t64([...batch, M, N]);
      for (let q = 0; q < ia.data.length; q++) {
        const ao = ia.data[q]! * M * K, bo = ib.data[q]! * K * N, yo = q * M * N;
        for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += A.data[ao + i * K + k]! * B.data[bo + k * N + j]!;
          y.data[yo + i * N + j] = s;
        }
      }
      return [y];
    }
    case 'Gemm': {
      let [A, B] = xs as [T64, T64];
      if (attr(n, 'transA', 0)) A = transpose(A, [1, 0]);
      if (attr(n, 'transB', 0)) B = transpose(B, [1, 0]);
      const [y] = run({ ...n, op: 'MatMul' }, [A, B]);
      const alpha = attr(n, 'alpha', 1), beta = attr(n, 'beta', 1);
      const C = xs[2];
      return [C ? bcast([y!, C], y!.shape, ([a, c]) => alpha * a! + beta * c!) : t64(y!.shape, y!.data.map((v) => alpha * v))];
    }
    case 'Transpose': return [transpose(x, (n.attrs.perm as number[] | undefined) ?? x.shape.map((_, i) => x.shape.length - 1 - i))];
    case 'Reshape': {
      const spec = ints(xs[1]).map((d, i) => (d === 0 ? x.shape[i]! : d));
      const known = spec.reduce((p, d) => (d === -1 ? p : p * d), 1);
      return [{ shape: spec.map((d) => (d === -1 ? x.data.length / known : d)), data: x.data }];
    }
    case 'Concat': {
      const a = ax(attr(n, 'axis', 0), x.shape.length);
      const out = [...x.shape];
      out[a] = xs.reduce((p, t) => p + t!.shape[a]!, 0);
      const y = t64(out);
      let at = 0;
      for (const t of xs) {
        box(y, out.map((_, i) => (i === a ? at : 0)), t!.shape, t);
        at += t!.shape[a]!;
      }
      return [y];
    }
    case 'Slice': {
      const [st, en, axes] = [ints(xs[1]), ints(xs[2]), xs[3] ? ints(xs[3]) : null];
      const lo = x.shape.map(() => 0);
      const size = [...x.shape];
      st.forEach((s, i) => {
        const a = ax(axes ? axes[i]! : i, x.shape.length);
        const d = x.shape[a]!;
        const l = Math.min(Math.max(s < 0 ? s + d : s, 0), d);
        const h = Math.min(Math.max(en[i]! < 0 ? en[i]! + d : en[i]!, 0), d);
        lo[a] = l;
        size[a] = Math.max(0, h - l);
      });
      return [box(x, lo, size)];
    }
    case 'Split': {
      const a = ax(attr(n, 'axis', 0), x.shape.length);
      let at = 0;
      return ints(xs[1]).map((s) => {
        const lo = x.shape.map((_, i) => (i === a ? at : 0));
        at += s;
        return box(x, lo, x.shape.map((d, i) => (i === a ? s : d)));
      });
    }
    case 'Pad': {
      const p = ints(xs[1]);
      const r = x.shape.length;
      const y = t64(x.shape.map((d, i) => d + p[i]! + p[i + r]!));
      return [box(y, p.slice(0, r), x.shape, x)];
    }
    case 'Expand': return [bcast([x], bshape([x.shape, ints(xs[1])]), ([v]) => v!)];
    case 'ReduceSum': return [reduce(x, ints(xs[1]), attr(n, 'keepdims', 1) !== 0, false)];
    case 'ReduceMean': return [reduce(x, (n.attrs.axes as number[] | undefined) ?? [], attr(n, 'keepdims', 1) !== 0, true)];
    case 'Shape': {
      const r = x.shape.length;
      const lo = ax(attr(n, 'start', 0), r), hi = n.attrs.end === undefined ? r : Math.min(ax(attr(n, 'end', r), r), r);
      const s = x.shape.slice(lo, hi);
      return [t64([s.length], Float64Array.from(s))];
    }
    case 'ConstantOfShape': return [t64(ints(x))];
    case 'Softmax': case 'LogSoftmax':
      return [alongAxis(x, attr(n, 'axis', -1), (get, set, d) => {
        let m = -Infinity;
        for (let i = 0; i < d; i++) m = Math.max(m, get(i));
        let s = 0;
        for (let i = 0; i < d; i++) s += Math.exp(get(i) - m);
        for (let i = 0; i < d; i++) set(i, n.op === 'Softmax' ? Math.exp(get(i) - m) / s : get(i) - m - Math.log(s));
      })];
    case 'LayerNormalization': {
      const a = ax(attr(n, 'axis', -1), x.shape.length);
      const D = numel(x.shape.slice(a));
      const outer = x.data.length / D;
      const eps = attr(n, 'epsilon', 1e-5);
      const xhat = t64([...x.shape]);
      const stat = x.shape.map((d, i) => (i < a ? d : 1));
      const mean = t64(stat), inv = t64(stat);
      for (let o = 0; o < outer; o++) {
        let m = 0;
        for (let i = 0; i < D; i++) m += x.data[o * D + i]!;
        m /= D;
        let v = 0;
        for (let i = 0; i < D; i++) v += (x.data[o * D + i]! - m) ** 2;
        const r = 1 / Math.sqrt(v / D + eps);
        mean.data[o] = m;
        inv.data[o] = r;
        for (let i = 0; i < D; i++) xhat.data[o * D + i] = (x.data[o * D + i]! - m) * r;
      }
      let y = bcast([xhat, xs[1]!], x.shape, ([h, g]) => h! * g!);
      if (xs[2]) y = bcast([y, xs[2]], x.shape, ([h, b]) => h! + b!);
      return [y, mean, inv];
    }
    default:
      throw new Error(`graph-f64: op ${n.op} (node ${n.name ?? n.outputs[0]}) is not implemented`);
  }
}

/** Evaluate the graph in float64; returns every requested output (default: the graph outputs). */
export function evalGraph64(g: GraphSpec, feeds: Map<string, T64>, outputs = g.outputs.map((o) => o.name)): Map<string, T64> {
  const env = new Map<string, T64>(feeds);
  for (const i of g.initializers) {
    const data = i.ints ? Float64Array.from(i.ints) : Float64Array.from(i.data ?? []);
    env.set(i.name, { shape: [...i.shape], data });
  }
  for (const n of g.nodes) {
    const xs = n.inputs.map((name) => {
      if (!name) return undefined;
      const v = env.get(name);
      if (!v) throw new Error(`graph-f64: node ${n.name ?? n.op} reads "${name}", which is not computed yet`);
      return v;
    });
    run(n, xs).forEach((y, i) => n.outputs[i] && env.set(n.outputs[i]!, y));
  }
  return new Map(outputs.map((o) => [o, env.get(o)!]));
}
