/**
 * k-means for the prompt methods' data-dependent initialisation, in the two forms their sources
 * use, with one result shape:
 * - euclideanKmeans: SPT's prototypes (the paper's k-means; its official code has none), seeded
 *   k-means++ then Lloyd.
 * - cosineKmeans: DA-VPT's class → proxy mapping, after the official `cosine_kmeans`.
 * Both draw only from the `rng` given, so a seed fixes the result.
 */
import type { Rng } from '../../devices/rng.ts';
import { CompilerError } from '../ops/errors.ts';

export interface KmeansOptions {
  /** At most this many iterations. */
  iterations: number;
  /** Stop once the centres move less than this (each function says how it measures). */
  tol: number;
  rng: Rng;
}

export interface KmeansResult {
  /** [k·D] row-major centres. */
  centres: Float32Array;
  /** Cluster of every row of X ([rows]); the centres are computed from (or against) it. */
  assign: Int32Array;
  iterations: number;
}

/**
 * k centres of X [rows, D] (Euclidean). Seeding: k-means++ (first centre uniform, each next one
 * drawn with probability ∝ squared distance to the nearest chosen centre), all from `rng`, so a
 * seed fixes the result. Then Lloyd iterations (assign to the nearest centre, lowest index on
 * ties; centre = mean of its points, in float64) until the assignment stops changing, no centre
 * moves more than `tol` × RMS row norm, or `iterations`. An emptied cluster takes the row farthest
 * from its centre (deterministic). The returned assignment is the one the centres are means of.
 */
export function euclideanKmeans(X: Float32Array, D: number, k: number, opts: KmeansOptions): KmeansResult {
  const { rng, iterations: maxIter, tol } = opts;
  const rows = X.length / D;
  if (k > rows) throw new CompilerError('CONFIG_INVALID', `k-means: ${k} centres need at least ${k} rows, got ${rows}`);
  const c = new Float64Array(k * D);
  const dist2 = (r: number, ci: number) => {
    let s = 0;
    for (let d = 0; d < D; d++) {
      const u = X[r * D + d]! - c[ci * D + d]!;
      s += u * u;
    }
    return s;
  };
  // k-means++ seeding.
  const near = new Float64Array(rows).fill(Infinity);
  const setCentre = (ci: number, r: number) => {
    for (let d = 0; d < D; d++) c[ci * D + d] = X[r * D + d]!;
    for (let i = 0; i < rows; i++) near[i] = Math.min(near[i]!, dist2(i, ci));
  };
  setCentre(0, Math.floor(rng() * rows));
  for (let ci = 1; ci < k; ci++) {
    let total = 0;
    for (let i = 0; i < rows; i++) total += near[i]!;
    let r = 0;
    if (total > 0) {
      let u = rng() * total;
      for (r = 0; r < rows - 1; r++) if ((u -= near[r]!) < 0) break;
    } else r = Math.floor(rng() * rows); // every row already coincides with a centre
    setCentre(ci, r);
  }
  let norm2 = 0;
  for (let i = 0; i < X.length; i++) norm2 += X[i]! * X[i]!;
  const shiftTol = tol * Math.sqrt(norm2 / rows);
  const assign = new Int32Array(rows).fill(-1);
  const best = new Float64Array(rows);
  let it = 0;
  while (it < maxIter) {
    it++;
    let changed = 0;
    for (let i = 0; i < rows; i++) {
      let bi = 0;
      let bd = Infinity;
      for (let ci = 0; ci < k; ci++) {
        const d2 = dist2(i, ci);
        if (d2 < bd) [bd, bi] = [d2, ci];
      }
      best[i] = bd;
      if (assign[i] !== bi) changed++, (assign[i] = bi);
    }
    if (changed === 0) break; // centres are already the means of this assignment
    const sum = new Float64Array(k * D);
    const cnt = new Int32Array(k);
    for (let i = 0; i < rows; i++) {
      const a = assign[i]!;
      cnt[a]!++;
      for (let d = 0; d < D; d++) sum[a * D + d] += X[i * D + d]!;
    }
    for (let ci = 0; ci < k; ci++) {
      if (cnt[ci] === 0) {
        // Empty cluster: move the row farthest from its own centre here, taken from a cluster
        // that keeps at least one row.
        let far = -1;
        for (let i = 0; i < rows; i++) if (cnt[assign[i]!]! > 1 && (far < 0 || best[i]! > best[far]!)) far = i;
        const from = assign[far]!;
        cnt[from]!--;
        for (let d = 0; d < D; d++) sum[from * D + d] -= X[far * D + d]!;
        assign[far] = ci;
        best[far] = 0;
        cnt[ci] = 1;
        for (let d = 0; d < D; d++) sum[ci * D + d] = X[far * D + d]!;
      }
    }
    let shift = 0;
    for (let ci = 0; ci < k; ci++) {
      let s = 0;
      for (let d = 0; d < D; d++) {
        const m = sum[ci * D + d]! / cnt[ci]!;
        s += (m - c[ci * D + d]!) ** 2;
        c[ci * D + d] = m;
      }
      shift = Math.max(shift, Math.sqrt(s));
    }
    if (shift <= shiftTol) break;
  }
  return { centres: Float32Array.from(c), assign, iterations: it };
}

/**
 * Cosine k-means of the rows of X [n·D] (official `cosine_kmeans`): centres start as k random
 * non-zero rows (or `init`, a warm start); each row joins the centre of highest cosine
 * similarity (ties: the lower index); a centre becomes the mean of its rows (an empty one
 * stays); stop after `iterations` or when the centres move less than `tol` (Frobenius norm).
 * The returned assignment is against the returned centres, so a warm start from them is a
 * fixed point. All-zero rows (classes without images) get a random cluster.
 */
export function cosineKmeans(X: Float32Array, D: number, k: number, opts: KmeansOptions & { init?: Float32Array }): KmeansResult {
  const n = X.length / D;
  const row = (i: number) => X.subarray(i * D, (i + 1) * D);
  const valid = Array.from({ length: n }, (_, i) => i).filter((i) => row(i).some((v) => v !== 0));
  let centres: Float32Array;
  if (opts.init) {
    if (opts.init.length !== k * D) throw new CompilerError('BAD_SHAPE', `cosine k-means: warm-start centres have ${opts.init.length} values, expected ${k}×${D}`);
    centres = Float32Array.from(opts.init);
  } else {
    if (valid.length === 0) throw new CompilerError('DATA_INVALID', 'cosine k-means: every class mean is zero (no images?)');
    // k distinct random rows (partial Fisher–Yates); with fewer rows than k, rows repeat.
    const order = [...valid];
    for (let c = 0; c < Math.min(k, order.length); c++) {
      const j = c + Math.floor(opts.rng() * (order.length - c));
      [order[c], order[j]] = [order[j]!, order[c]!];
    }
    centres = new Float32Array(k * D);
    for (let c = 0; c < k; c++) centres.set(row(order[c % order.length]!), c * D);
  }
  const nearest = (C: Float32Array): number[] => {
    const norms = Array.from({ length: k }, (_, c) => Math.hypot(...C.subarray(c * D, (c + 1) * D)) || 1);
    return valid.map((i) => {
      const x = row(i);
      let best = 0;
      let bestSim = -Infinity;
      for (let c = 0; c < k; c++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += x[d]! * C[c * D + d]!;
        const sim = dot / norms[c]!; // ‖x‖ is common to every centre
        if (sim > bestSim) [best, bestSim] = [c, sim];
      }
      return best;
    });
  };
  let iterations = 0;
  for (let it = 0; it < opts.iterations; it++) {
    iterations = it + 1;
    const a = nearest(centres);
    const sum = new Float64Array(k * D);
    const cnt = new Array<number>(k).fill(0);
    valid.forEach((i, r) => {
      const c = a[r]!;
      cnt[c]!++;
      const x = row(i);
      for (let d = 0; d < D; d++) sum[c * D + d]! += x[d]!;
    });
    const next = Float32Array.from(centres);
    for (let c = 0; c < k; c++) if (cnt[c]! > 0) for (let d = 0; d < D; d++) next[c * D + d] = sum[c * D + d]! / cnt[c]!;
    let shift = 0;
    for (let j = 0; j < next.length; j++) shift += (next[j]! - centres[j]!) ** 2;
    centres = next;
    if (Math.sqrt(shift) < opts.tol) break;
  }
  const a = nearest(centres);
  const assign = new Int32Array(n).fill(-1);
  valid.forEach((i, r) => (assign[i] = a[r]!));
  for (let i = 0; i < n; i++) if (assign[i] === -1) assign[i] = Math.floor(opts.rng() * k);
  return { centres, assign, iterations };
}
