/**
 * The backbone + prompt pack form (the shared backbone of `compile --form shared`): one backbone
 * graph serves many tasks, and a task is a small prompt pack. Built from the `shared` export (trained tensors as graph inputs, task.ts) by
 * cutting it where the trained tensors first meet the image:
 *
 *   pack side      nodes that read trained tensors and not the image: for vpt-deep, per block,
 *                  LN1(P_i)·W_k + b_k and LN1(P_i)·W_v + b_v (the prefix K/V). They are evaluated
 *                  once, at compile time, in onnxruntime.
 *   backbone side  every other node. The values crossing the cut become its graph inputs.
 *
 * So per frame the device computes exactly what the fused graph computes; prefix K/V arrive as
 * inputs instead of initializers, and a pack holds the crossing values in the form the graph
 * takes: vpt-deep → blocks.{i}.attn.prompt_k / prompt_v [H, N, dh] and head.weight [C, D],
 * head.bias [C]; vpt-shallow → prompt_embeddings [1, N, D] (shallow prompts must run as tokens);
 * linear → the head alone.
 *
 * The cut moves up through pure layout nodes (Reshape, Transpose, …) to a value with a name,
 * so pack tensors carry the exporter's labels rather than generated ids (the layout node stays in
 * the backbone, where ORT makes it free). The class count stays symbolic (`classes`) on the head
 * inputs and the outputs, so one backbone serves tasks with different label sets.
 */
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { decodeModel, encodeModel, type GraphSpec, type NodeSpec, type ValueSpec } from '../ops/onnx-proto.ts';
import type { HostTensor } from '../ops/host-tensor.ts';
import type { Dim } from '../ops/ops.ts';
import { CompilerError } from '../ops/errors.ts';
import { CLASSES_DIM, type PackInputSpec } from '../../runtime/artifact/index.ts';

const { onnx } = onnxProto;

/** Ops that only move data, with one data input (the rest are constant shapes/axes). */
const LAYOUT = new Set(['Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Identity', 'Flatten']);
/** Names the recorder makes up (onnx-ops.ts toBytes): the cut prefers a labelled value. */
const GENERATED = /^(v|const_)\d+(_\d+)?$/;

export interface BackbonePackPlan {
  /** Pack side: trained tensors in, the crossing values out (output shapes left to ORT). */
  pack: GraphSpec;
  /** Backbone side, its pack inputs not yet declared (their shapes come from `packTensors`). */
  backbone: GraphSpec;
  /** Names of the crossing values, in first-use order: the backbone's inputs after `image`. */
  crossing: string[];
  metadata: Record<string, string>;
}

/** Where to cut a `shared` export whose image input is `image`. Pure graph analysis. */
export function planBackbonePack(sharedModel: Uint8Array, image = 'image'): BackbonePackPlan {
  const { graph: g, metadata } = decodeModel(sharedModel);
  const imageIn = g.inputs.find((v) => v.name === image);
  if (!imageIn) throw new CompilerError('INTERNAL', `shared export: no graph input "${image}" (inputs: ${g.inputs.map((v) => v.name).join(', ')})`);
  const params = g.inputs.filter((v) => v.name !== image);
  const imageDep = new Set([image]);
  const paramDep = new Set(params.map((v) => v.name));
  for (const n of g.nodes) {
    if (n.inputs.some((i) => imageDep.has(i))) for (const o of n.outputs) imageDep.add(o);
    if (n.inputs.some((i) => paramDep.has(i))) for (const o of n.outputs) paramDep.add(o);
  }
  const onPackSide = (n: NodeSpec) => n.outputs.some((o) => paramDep.has(o) && !imageDep.has(o));
  const packSide = new Set(g.nodes.filter(onPackSide));
  const producer = new Map(g.nodes.flatMap((n) => n.outputs.map((o) => [o, n] as const)));
  const init = new Set(g.initializers.map((t) => t.name));
  const outputs = new Set(g.outputs.map((v) => v.name));
  for (const o of outputs) if (paramDep.has(o) && !imageDep.has(o)) throw new CompilerError('UNSUPPORTED', `shared export: output ${o} does not depend on the image; nothing to serve from a backbone`);

  // Hoist: a generated-name crossing value made by a layout node from a pack-side value moves the
  // node to the backbone side (when nothing else on the pack side reads its output).
  const paramIn = new Set(params.map((v) => v.name));
  const fromPackSide = (i: string) => paramIn.has(i) || (producer.has(i) && packSide.has(producer.get(i)!));
  const crossingOf = () => {
    const seen = new Set<string>();
    const list: string[] = [];
    for (const n of g.nodes) {
      if (packSide.has(n)) continue;
      for (const i of n.inputs) if (i && fromPackSide(i) && !seen.has(i)) (seen.add(i), list.push(i));
    }
    return list;
  };
  for (let changed = true; changed; ) {
    changed = false;
    for (const c of crossingOf()) {
      const n = producer.get(c);
      if (!n || !packSide.has(n) || !GENERATED.test(c) || !LAYOUT.has(n.op)) continue;
      if (!n.inputs.slice(1).every((i) => !i || init.has(i))) continue;
      if (g.nodes.some((m) => packSide.has(m) && m.inputs.includes(c))) continue;
      packSide.delete(n);
      changed = true;
    }
  }
  const generatedCrossing = crossingOf();
  if (generatedCrossing.length === 0) throw new CompilerError('UNSUPPORTED', 'shared export: no trained tensor reaches the image path; export it fused');
  const rename = crossingNames(generatedCrossing, producer, init, new Set(g.nodes.flatMap((n) => [...n.inputs, ...n.outputs])));
  const r = (v: string) => rename.get(v) ?? v;
  const renamed = (n: NodeSpec): NodeSpec => (n.inputs.some((i) => rename.has(i)) || n.outputs.some((o) => rename.has(o)) ? { ...n, inputs: n.inputs.map(r), outputs: n.outputs.map(r) } : n);
  const crossing = generatedCrossing.map(r);

  // Pack graph: only the pack-side nodes the crossing values need.
  const need = new Set(crossing);
  const packNodes: NodeSpec[] = [];
  for (const n of [...g.nodes].reverse()) {
    if (!packSide.has(n) || !n.outputs.some((o) => need.has(r(o)))) continue;
    packNodes.unshift(renamed(n));
    for (const i of n.inputs) if (i) need.add(r(i));
  }
  const used = (nodes: NodeSpec[]) => new Set(nodes.flatMap((n) => n.inputs));
  const packUsed = used(packNodes);
  const bbNodes = g.nodes.filter((n) => !packSide.has(n)).map(renamed);
  const bbUsed = used(bbNodes);
  const unknown = (name: string): ValueSpec => ({ name, dtype: 'float32', shape: [] });
  return {
    pack: {
      name: `${g.name}-pack`,
      nodes: packNodes,
      initializers: g.initializers.filter((t) => packUsed.has(t.name)),
      inputs: params.filter((v) => need.has(v.name)),
      outputs: crossing.map(unknown),
    },
    backbone: { name: g.name, nodes: bbNodes, initializers: g.initializers.filter((t) => bbUsed.has(t.name)), inputs: [imageIn], outputs: g.outputs },
    crossing,
    metadata,
  };
}

/**
 * Readable names for crossing values the recorder named (v83): the nearest labelled ancestor
 * (following each node's first non-constant input) and the op that made the value, e.g.
 * `vp.pos_embed.slice`, numbered `.2`, `.3` when taken. The names are a pure function of the
 * graph, so every task of a backbone still gets the same backbone bytes, and a pack's tensors say
 * what they are in `inspect` and in errors.
 */
function crossingNames(crossing: readonly string[], producer: ReadonlyMap<string, NodeSpec>, init: ReadonlySet<string>, taken: Set<string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const c of crossing) {
    if (!GENERATED.test(c)) continue;
    const op = producer.get(c)?.op.toLowerCase() ?? 'value';
    // Prefer a labelled intermediate (vp.pos_embed), then keep climbing through generated
    // values, and settle for a trained tensor's name only when nothing else is left.
    let v: string | undefined = c;
    for (let hops = 0; v && GENERATED.test(v) && hops < 64; hops++) {
      const ins: string[] = producer.get(v)?.inputs.filter((i) => i && !init.has(i)) ?? [];
      v = ins.find((i) => producer.has(i) && !GENERATED.test(i)) ?? ins.find((i) => GENERATED.test(i)) ?? ins[0];
    }
    const base = `${v && !GENERATED.test(v) ? v : 'pack'}.${op}`;
    let name = base;
    for (let k = 2; taken.has(name); k++) name = `${base}.${k}`;
    taken.add(name);
    out.set(c, name);
  }
  return out;
}

/** Encodes a graph whose outputs have unknown shapes (ORT infers them). */
function encodeShapeless(g: GraphSpec): Uint8Array {
  const m = onnx.ModelProto.decode(encodeModel(g));
  for (const o of m.graph!.output ?? []) o.type = { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } };
  return onnx.ModelProto.encode(m).finish();
}

/** The pack tensors of a task: its trained tensors through the pack side of the plan. */
export async function packTensors(plan: BackbonePackPlan, params: ReadonlyMap<string, HostTensor>): Promise<Map<string, HostTensor>> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of plan.pack.inputs) {
    const t = params.get(v.name);
    if (!t) throw new CompilerError('MISSING_TENSOR', `trained tensors lack "${v.name}", an input of the shared backbone's pack side`);
    feeds[v.name] = new ort.Tensor('float32', t.data, [...t.shape]);
  }
  const out = new Map<string, HostTensor>();
  const direct = plan.crossing.filter((c) => c in feeds);
  for (const c of direct) out.set(c, { shape: [...params.get(c)!.shape], data: new Float32Array(params.get(c)!.data) });
  const computed = plan.crossing.filter((c) => !(c in feeds));
  if (computed.length > 0) {
    const s = await ort.InferenceSession.create(encodeShapeless({ ...plan.pack, outputs: plan.pack.outputs.filter((o) => computed.includes(o.name)) }), { logSeverityLevel: 3 });
    try {
      const r = await s.run(feeds, computed);
      for (const c of computed) out.set(c, { shape: r[c]!.dims.map(Number), data: new Float32Array(r[c]!.data as Float32Array) });
    } finally {
      await s.release();
    }
  }
  return new Map(plan.crossing.map((c) => [c, out.get(c)!]));
}

/**
 * Declared pack inputs: the task's tensor shapes, with the class count symbolic on the head
 * (head.weight [C, D], head.bias [C]) when the head reaches the backbone as it was trained.
 */
export function packInputSpecs(plan: BackbonePackPlan, tensors: ReadonlyMap<string, HostTensor>): PackInputSpec[] {
  const head = tensors.has('head.weight') && tensors.has('head.bias');
  return plan.crossing.map((name) => {
    const shape: (number | string)[] = [...tensors.get(name)!.shape];
    if (head && (name === 'head.weight' || name === 'head.bias')) shape[0] = CLASSES_DIM;
    return { name, dtype: 'float32', shape };
  });
}

/** The backbone model: `image` and the pack inputs in, logits/probs [N, classes] out. */
export function backboneModel(plan: BackbonePackPlan, inputs: readonly PackInputSpec[]): Uint8Array {
  const symbolic = inputs.some((v) => v.shape.includes(CLASSES_DIM));
  // GraphSpec types dims as number | 'N'; encodeModel writes any string as a dimParam.
  const dims = (s: readonly (number | string)[]) => s as Dim[];
  const g: GraphSpec = {
    ...plan.backbone,
    inputs: [...plan.backbone.inputs, ...inputs.map((v) => ({ name: v.name, dtype: v.dtype, shape: dims(v.shape) }))],
    outputs: plan.backbone.outputs.map((o) => (symbolic ? { ...o, shape: dims([...o.shape.slice(0, -1), CLASSES_DIM]) } : o)),
  };
  // Nothing task-specific: every task of this backbone, method and options gets the same bytes.
  const metadata: Record<string, string> = { ...plan.metadata, 'edgeprompt.form': 'shared-backbone' };
  delete metadata['edgeprompt.name'];
  return encodeModel(g, metadata);
}

export interface BackbonePackSplit {
  backbone: Uint8Array;
  inputs: PackInputSpec[];
  tensors: Map<string, HostTensor>;
}

/** planBackbonePack + packTensors + backboneModel: a `shared` export as backbone model and pack tensors. */
export async function splitBackbonePack(sharedModel: Uint8Array, params: ReadonlyMap<string, HostTensor>, image = 'image'): Promise<BackbonePackSplit> {
  const plan = planBackbonePack(sharedModel, image);
  const tensors = await packTensors(plan, params);
  const inputs = packInputSpecs(plan, tensors);
  return { backbone: backboneModel(plan, inputs), inputs, tensors };
}

/** ORT feeds for a pack's tensors. */
export function packFeeds(tensors: ReadonlyMap<string, HostTensor>): Record<string, ort.Tensor> {
  return Object.fromEntries([...tensors].map(([k, t]) => [k, new ort.Tensor('float32', t.data, [...t.shape])]));
}
