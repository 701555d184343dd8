/**
 * Reverse-mode differentiation of a recorded forward graph (GraphSpec).
 *
 * Given the scalar `loss` and the graph inputs to differentiate (`wrt`: prompts, head, any
 * trainable weight), returns ONE graph: the forward nodes, then backward nodes, with outputs
 * `loss`, the kept forward outputs (logits) and `grad:<input>` per trainable input.
 *
 * Only values that lie on a path from a trainable input to the loss get gradients: a node's
 * rule is asked for exactly the inputs on such a path, so frozen weights (initializers) and
 * the image branch before the first prompt never get backward nodes. Contributions from several
 * consumers are summed with one Sum node per value.
 */
import type { GraphSpec, NodeSpec, ValueSpec } from '../../ops/onnx-proto.ts';
import { CompilerError } from '../../ops/errors.ts';
import { GraphBuilder } from './builder.ts';
import type { GraphIndex, Rule } from './rule.ts';
import { inferShapes, nodeName } from './shapes.ts';
import { LINALG_RULES } from './rules-linalg.ts';
import { ELEMENTWISE_RULES } from './rules-elementwise.ts';
import { NORM_RULES } from './rules-norm.ts';
import { LAYOUT_RULES } from './rules-layout.ts';
import { geluBackward, matchGelu } from './rules-gelu.ts';

export const RULES: Readonly<Record<string, Rule>> = { ...LINALG_RULES, ...ELEMENTWISE_RULES, ...NORM_RULES, ...LAYOUT_RULES };

/** Ops whose outputs never carry gradient (integer shape arithmetic). */
const NON_DIFFERENTIABLE = new Set(['Shape', 'ConstantOfShape']);

export interface DifferentiateOptions {
  /** The scalar to differentiate (a value of the graph). */
  loss: string;
  /** Float graph inputs to differentiate with respect to. */
  wrt: readonly string[];
  /** Forward values to keep as outputs besides the loss (default: the graph's outputs). */
  keep?: readonly string[];
  /** Prefix of backward value names. */
  prefix?: string;
}

export interface GradientGraph {
  graph: GraphSpec;
  /** Output name of each input's gradient (`grad:<input>`). */
  grads: Map<string, string>;
  /** Forward values a gradient flows back through. */
  active: Set<string>;
  /** Trainable inputs the loss does not depend on (their gradient output is zeros). */
  unreached: string[];
  forwardNodes: number;
  backwardNodes: number;
}

export const gradName = (input: string) => `grad:${input}`;

function indexGraph(g: GraphSpec, nodes: NodeSpec[]): GraphIndex {
  const producer = new Map<string, NodeSpec>();
  const uses = new Map<string, number>();
  for (const n of nodes) {
    for (const y of n.outputs) producer.set(y, n);
    for (const x of n.inputs) uses.set(x, (uses.get(x) ?? 0) + 1);
  }
  for (const v of g.outputs) uses.set(v.name, (uses.get(v.name) ?? 0) + 1);
  const scalars = new Map<string, number>();
  for (const i of g.initializers) if (i.dtype === 'float32' && i.data?.length === 1) scalars.set(i.name, i.data[0]!);
  return { producer, uses, scalars };
}

export function differentiate(g: GraphSpec, o: DifferentiateOptions): GradientGraph {
  const nodes: NodeSpec[] = g.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: { ...n.attrs } }));
  const inputs = new Map(g.inputs.map((v) => [v.name, v]));
  for (const p of o.wrt) {
    const v = inputs.get(p);
    if (!v) throw new CompilerError('MISSING_TENSOR', `autodiff: "${p}" is not an input of graph ${g.name} (inputs: ${[...inputs.keys()].join(', ')})`);
    if (v.dtype !== 'float32') throw new CompilerError('INTERNAL', `autodiff: input "${p}" is ${v.dtype}; only float32 inputs have gradients`);
  }
  const produced = new Set([...g.inputs.map((v) => v.name), ...g.initializers.map((v) => v.name), ...nodes.flatMap((n) => n.outputs)]);
  if (!produced.has(o.loss)) throw new CompilerError('MISSING_TENSOR', `autodiff: the loss "${o.loss}" is not a value of graph ${g.name}`);

  // Values that depend on a trainable input (forward sweep) and that the loss depends on (backward sweep).
  const fromParams = new Set<string>(o.wrt);
  for (const n of nodes) {
    if (!NON_DIFFERENTIABLE.has(n.op) && n.inputs.some((x) => fromParams.has(x))) for (const y of n.outputs) fromParams.add(y);
  }
  const toLoss = new Set<string>([o.loss]);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (n.outputs.some((y) => toLoss.has(y))) for (const x of n.inputs) if (x) toLoss.add(x);
  }
  const active = new Set([...fromParams].filter((v) => toLoss.has(v)));
  // Every node on a gradient path needs a rule: say which one lacks it before anything else.
  for (const n of nodes) {
    if (!n.outputs.some((y) => active.has(y)) || !n.inputs.some((x) => active.has(x))) continue;
    if (!RULES[n.op] || n.domain) throw new CompilerError('UNSUPPORTED', `autodiff: node ${nodeName(n)} lies between a trainable input and the loss, and op ${n.domain ? `${n.domain}:` : ''}${n.op} has no backward rule (known: ${Object.keys(RULES).sort().join(', ')})`);
  }

  const shapes = inferShapes(g);
  const lossInfo = shapes.get(o.loss);
  if (!lossInfo) throw new CompilerError('UNSUPPORTED', `autodiff: the loss "${o.loss}" has no static shape (it is computed by an op the shape rules do not know)`);
  if (lossInfo.shape.some((d) => d !== 1)) throw new CompilerError('BAD_SHAPE', `autodiff: the loss "${o.loss}" must be a scalar, got [${lossInfo.shape.join(', ')}]`);

  const ix = indexGraph(g, nodes);
  const b = new GraphBuilder(g, shapes, o.prefix ?? 'grad');
  b.producers = ix.producer;
  const hints = new Map<string, string>();
  const contributions = new Map<string, string[]>();
  const add = (v: string, grad: string) => contributions.set(v, [...(contributions.get(v) ?? []), grad]);
  const gradOf = (v: string): string | null => {
    const c = contributions.get(v);
    if (!c || c.length === 0) return null;
    if (c.length > 1) contributions.set(v, [b.emit('Sum', c, {}, 'acc')]);
    return contributions.get(v)![0]!;
  };
  add(o.loss, lossInfo.shape.length === 0 ? b.scalar(1) : b.emit('Expand', [b.scalar(1), b.ints(lossInfo.shape as number[])], {}, 'seed'));

  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!n.outputs.some((y) => active.has(y))) continue;
    const needs = n.inputs.map((x) => x !== '' && active.has(x));
    if (!needs.some(Boolean)) continue;
    const dy = n.outputs.map((y) => (active.has(y) ? gradOf(y) : null));
    if (dy.every((d) => d === null)) continue;
    // Multi-node patterns first: their inner values get no gradient, so their nodes are skipped.
    const geluIn = matchGelu(n, ix);
    if (geluIn) {
      if (active.has(geluIn)) add(geluIn, geluBackward(b, geluIn, dy[0]!));
      continue;
    }
    const rule = RULES[n.op]!;
    const unknown = [...n.inputs, ...n.outputs].find((v) => v && !shapes.has(v));
    if (unknown) throw new CompilerError('UNSUPPORTED', `autodiff: node ${nodeName(n)} lies between a trainable input and the loss, but "${unknown}" has no static shape (it is computed by an op the shape rules do not know)`);
    const dx = rule({ node: n, dy, needs, b, ix, hints });
    n.inputs.forEach((x, k) => {
      const d = dx[k];
      if (needs[k] && d) add(x, d);
    });
  }

  const grads = new Map<string, string>();
  const unreached: string[] = [];
  const tail: NodeSpec[] = [];
  const outputs: ValueSpec[] = [];
  const keep = o.keep ?? g.outputs.map((v) => v.name);
  for (const name of [o.loss, ...keep.filter((k) => k !== o.loss)]) {
    const info = shapes.get(name);
    if (!info) throw new CompilerError('MISSING_TENSOR', `autodiff: output "${name}" is not a value of graph ${g.name}`);
    outputs.push({ name, dtype: info.dtype, shape: info.shape });
  }
  for (const p of o.wrt) {
    let d = gradOf(p);
    if (!d) {
      unreached.push(p);
      d = b.zerosLike(p);
    }
    const name = gradName(p);
    tail.push({ op: 'Identity', inputs: [d], outputs: [name], attrs: {}, name });
    grads.set(p, name);
    outputs.push({ name, dtype: 'float32', shape: [...inputs.get(p)!.shape] });
  }
  return {
    graph: { name: `${g.name}-train`, nodes: [...nodes, ...b.nodes, ...tail], initializers: [...g.initializers, ...b.initializers], inputs: g.inputs.map((v) => ({ ...v, shape: [...v.shape] })), outputs },
    grads,
    active,
    unreached,
    forwardNodes: nodes.length,
    backwardNodes: b.nodes.length,
  };
}
