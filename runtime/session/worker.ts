// The inference worker's entry (a worker_threads Worker; bundled as edgeprompt-runtime-worker.mjs
// beside the runtime bundle). It owns the ORT sessions and runs them off the main thread; requests
// are answered in the order ORT finishes them (runs are serial: ORT computes on this thread).
// Frames arrive in transferred ArrayBuffers, wrapped as tensors without a copy, and are transferred
// back with the result for reuse (onnxruntime-node refuses SharedArrayBuffer-backed inputs).

import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { Feed, OpenInfo, Outputs, Reply, Request, RunResult } from './worker-protocol.ts';

if (!parentPort) throw new Error('runtime/session/worker.ts is the inference worker: start it with new Worker(), not as a program');
const port = parentPort;

interface Open {
  session: ort.InferenceSession;
  /** Constant feeds (prompt-pack tensors) by ref, made ORT tensors once. */
  consts: Map<number, ort.Tensor>;
}
const sessions = new Map<number, Open>();
let nextSession = 1;

function tensor(open: Open, f: Feed): ort.Tensor {
  if (f.ref !== undefined) {
    if (f.data !== undefined) open.consts.set(f.ref, new ort.Tensor(f.type, f.data as never, [...f.dims]));
    const t = open.consts.get(f.ref);
    if (!t) throw new Error(`feed ${f.name}: constant #${f.ref} was never sent to the worker`);
    return t;
  }
  if (f.data === undefined) throw new Error(`feed ${f.name}: no data`);
  return new ort.Tensor(f.type, f.data as never, [...f.dims]);
}

function get(id: number): Open {
  const s = sessions.get(id);
  if (!s) throw new Error(`session #${id} is not open in the worker (released?)`);
  return s;
}

/** A reply's value and the buffers that move back with it. */
interface Answer {
  value: unknown;
  transfer?: ArrayBuffer[];
}

async function handle(m: Request): Promise<Answer> {
  switch (m.op) {
    case 'open': {
      const session = await ort.InferenceSession.create(m.model, m.options);
      const id = nextSession++;
      sessions.set(id, { session, consts: new Map() });
      const info: OpenInfo = { session: id, inputNames: [...session.inputNames], outputNames: [...session.outputNames], inputMetadata: [...session.inputMetadata], outputMetadata: [...session.outputMetadata] };
      return { value: info };
    }
    case 'run': {
      const open = get(m.session);
      const feeds: Record<string, ort.Tensor> = {};
      for (const f of m.feeds) feeds[f.name] = tensor(open, f);
      const out = await open.session.run(feeds, m.fetches);
      const outputs: Outputs = {};
      for (const name of m.fetches) outputs[name] = { data: out[name]!.data as Outputs[string]['data'], dims: [...out[name]!.dims] };
      // The frames' buffers go back to the main thread's pool (transferred, not copied).
      const frames = m.feeds.filter((f) => f.ref === undefined && f.data !== undefined).map((f) => f.data!.buffer as ArrayBuffer);
      return { value: { outputs, frames } satisfies RunResult, transfer: frames };
    }
    case 'release': {
      const open = sessions.get(m.session);
      sessions.delete(m.session);
      await open?.session.release();
      return { value: null };
    }
    case 'drop':
      sessions.get(m.session)?.consts.delete(m.ref);
      return { value: null };
    case 'crash':
      setImmediate(() => {
        throw new Error('crash requested (test)');
      });
      return { value: null };
  }
}

port.on('message', (m: Request) => {
  handle(m).then(
    ({ value, transfer = [] }) => {
      if ('id' in m) port.postMessage({ id: m.id, ok: true, value } satisfies Reply, transfer);
    },
    (e: unknown) => {
      if ('id' in m) port.postMessage({ id: m.id, ok: false, error: e instanceof Error ? e.message : String(e) } satisfies Reply);
    },
  );
});
