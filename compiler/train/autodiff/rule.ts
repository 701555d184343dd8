/** What a backward rule sees and returns. One small file per group of rules registers them. */
import type { NodeSpec } from '../../ops/onnx-proto.ts';
import { CompilerError } from '../../ops/errors.ts';
import type { GraphBuilder } from './builder.ts';
import { nodeName } from './shapes.ts';

export interface RuleArgs {
  /** The forward node (a copy owned by the training graph: a rule may add optional outputs). */
  node: NodeSpec;
  /** Gradient of each output, or null where none reaches it. */
  dy: (string | null)[];
  /** Whether input i lies on a path from a trainable input: only those get gradients. */
  needs: boolean[];
  b: GraphBuilder;
  /** Producers and use counts of the forward graph (for rules that look one node further). */
  ix: GraphIndex;
  /** Values one rule leaves for a later one (keyed '<kind>:<value>'). */
  hints: Map<string, string>;
}

export interface GraphIndex {
  producer: Map<string, NodeSpec>;
  /** Forward consumers of each value (graph outputs count as one). */
  uses: Map<string, number>;
  /** Value of each scalar float initializer. */
  scalars: Map<string, number>;
}

/** Gradients for the node's inputs, in input order; null where not needed or not defined. */
export type Rule = (a: RuleArgs) => (string | null)[];

export function unsupported(n: NodeSpec, why: string): CompilerError {
  return new CompilerError('UNSUPPORTED', `autodiff: node ${nodeName(n)}: ${why}`);
}

/** The gradient of output 0, which every single-output rule needs. */
export function dy0(a: RuleArgs): string {
  const g = a.dy[0];
  if (!g) throw new Error(`internal: autodiff called ${nodeName(a.node)} without an output gradient`);
  return g;
}

/** Normalised integer attribute with a default. */
export function intAttr(n: NodeSpec, key: string, dflt: number): number {
  const v = n.attrs[key];
  return typeof v === 'number' ? v : dflt;
}

/** Float attribute (GraphSpec keeps whole-number floats as { float }). */
export function floatAttr(n: NodeSpec, key: string, dflt: number): number {
  const v = n.attrs[key];
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object' && !Array.isArray(v)) return v.float;
  return dflt;
}
