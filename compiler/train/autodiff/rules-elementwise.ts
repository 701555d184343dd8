/**
 * Backward rules of the elementwise ops. Binary ops broadcast like numpy, so each operand's
 * gradient is summed back to its own shape (GraphBuilder.reduceTo); the reduction comes before
 * any further elementwise work where that is cheaper (Sub's Neg runs on the reduced tensor).
 *
 * The exact GELU the recorder writes (x/√2 → Erf → +1 → ·x → ·½) differentiates through these
 * rules node by node; Erf's derivative is 2/√π · exp(−u²); Sqrt's is 1/(2√u) (CLIP's L2 norm).
 */
import type { Rule, RuleArgs } from './rule.ts';
import { dy0, intAttr, unsupported } from './rule.ts';

const operand = (a: RuleArgs, i: number, g: string) => a.b.reduceTo(g, a.b.shape(a.node.inputs[i]!), a.node.inputs[i]!);

const add: Rule = (a) => {
  const g = dy0(a);
  return a.node.inputs.map((_, i) => (a.needs[i] ? operand(a, i, g) : null));
};

const sub: Rule = (a) => {
  const g = dy0(a);
  return [a.needs[0] ? operand(a, 0, g) : null, a.needs[1] ? a.b.emit('Neg', [operand(a, 1, g)]) : null];
};

const mul: Rule = (a) => {
  const g = dy0(a);
  const [x, y] = a.node.inputs as [string, string];
  return [a.needs[0] ? operand(a, 0, a.b.emit('Mul', [g, y])) : null, a.needs[1] ? operand(a, 1, a.b.emit('Mul', [g, x])) : null];
};

const div: Rule = (a) => {
  const { b } = a;
  const g = dy0(a);
  const [, y] = a.node.inputs as [string, string];
  const q = a.node.outputs[0]!;
  // d(x/y)/dx = 1/y; d(x/y)/dy = −x/y² = −q/y
  const dx = a.needs[0] ? operand(a, 0, b.emit('Div', [g, y])) : null;
  const dy = a.needs[1] ? b.emit('Neg', [operand(a, 1, b.emit('Div', [b.emit('Mul', [g, q]), y]))]) : null;
  return [dx, dy];
};

const neg: Rule = (a) => [a.b.emit('Neg', [dy0(a)])];
const identity: Rule = (a) => [dy0(a)];

const cast: Rule = (a) => {
  const from = a.b.info(a.node.inputs[0]!).dtype;
  if (from !== 'float32' || intAttr(a.node, 'to', 1) !== 1) throw unsupported(a.node, `a gradient through a Cast from ${from} is not defined`);
  return [dy0(a)];
};

const exp: Rule = (a) => [a.b.emit('Mul', [dy0(a), a.node.outputs[0]!])];
const log: Rule = (a) => [a.b.emit('Div', [dy0(a), a.node.inputs[0]!])];

// d√u/du = 1/(2√u): half the incoming gradient over the output.
const sqrt: Rule = (a) => [a.b.emit('Div', [a.b.emit('Mul', [dy0(a), a.b.scalar(0.5)]), a.node.outputs[0]!], {}, 'dSqrt')];

const erf: Rule = (a) => {
  const { b } = a;
  const u = a.node.inputs[0]!;
  const e = b.emit('Exp', [b.emit('Neg', [b.emit('Mul', [u, u])])]);
  return [b.emit('Mul', [dy0(a), b.emit('Mul', [e, b.scalar(2 / Math.sqrt(Math.PI))])], {}, 'dErf')];
};

const sigmoid: Rule = (a) => {
  const { b } = a;
  const s = a.node.outputs[0]!;
  const ds = b.emit('Mul', [s, b.emit('Sub', [b.scalar(1), s])]); // σ(1 − σ)
  return [b.emit('Mul', [dy0(a), ds], {}, 'dSigmoid')];
};

export const ELEMENTWISE_RULES: Record<string, Rule> = {
  Add: add,
  Sum: add,
  Sub: sub,
  Mul: mul,
  Div: div,
  Neg: neg,
  Identity: identity,
  Cast: cast,
  Exp: exp,
  Log: log,
  Sqrt: sqrt,
  Erf: erf,
  Sigmoid: sigmoid,
};
