/**
 * The exact GELU as OnnxOps records it (torch's export form),
 *   u = x / √2,  e = erf(u),  one = e + 1,  m = x · one,  y = m · ½,
 * differentiated as one unit instead of node by node:
 *   dy/dx = Φ(x) + x·φ(x) = ½ · (1 + erf(u) + x·√(2/π)·exp(−u²)).
 * The backward reads only x, so the forward intermediates keep a single consumer each and ORT's
 * GeluFusion still turns the forward into one Gelu kernel (node by node, the backward would read
 * u and `one` and pin the five forward nodes). √(2/π) is folded into the exponent:
 * exp(ln√(2/π) − u²) = √(2/π)·exp(−u²). Nine elementwise passes in all, against fifteen.
 */
import type { NodeSpec } from '../../ops/onnx-proto.ts';
import type { GraphBuilder } from './builder.ts';
import type { GraphIndex } from './rule.ts';


const near = (a: number | undefined, b: number) => a !== undefined && Math.abs(a - b) <= 1e-6 * Math.abs(b);

/** If `y` is the last node of a recorded GELU, return its input x. */
export function matchGelu(y: NodeSpec, ix: GraphIndex): string | null {
  if (y.op !== 'Mul' || !near(ix.scalars.get(y.inputs[1]!), 0.5)) return null;
  const only = (v: string, op: string) => {
    const n = ix.producer.get(v);
    return n && n.op === op && ix.uses.get(v) === 1 ? n : null;
  };
  const m = only(y.inputs[0]!, 'Mul');
  const one = m && only(m.inputs[1]!, 'Add');
  if (!m || !one || !near(ix.scalars.get(one.inputs[1]!), 1)) return null;
  const e = only(one.inputs[0]!, 'Erf');
  const d = e && only(e.inputs[0]!, 'Div');
  if (!d || !near(ix.scalars.get(d.inputs[1]!), Math.SQRT2)) return null;
  const x = m.inputs[0]!;
  return d.inputs[0] === x ? x : null;
}

/** dx for the GELU y = gelu(x) given dy. */
export function geluBackward(b: GraphBuilder, x: string, dy: string): string {
  const u = b.emit('Mul', [x, b.scalar(Math.SQRT1_2)], {}, 'gelu_u');
  const e = b.emit('Erf', [u], {}, 'gelu_erf');
  const p = b.emit('Exp', [b.emit('Sub', [b.scalar(Math.log(Math.sqrt(2 / Math.PI))), b.emit('Mul', [u, u])])], {}, 'gelu_pdf'); // √(2/π)·e^(−u²)
  const t = b.emit('Sum', [e, b.emit('Mul', [x, p]), b.scalar(1)], {}, 'gelu_slope2'); // 2·(Φ + xφ)
  return b.emit('Mul', [b.emit('Mul', [dy, t]), b.scalar(0.5)], {}, 'dGelu');
}
