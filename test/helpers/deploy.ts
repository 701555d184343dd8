// Deployment test parts: releases of the committed demo model (a real 2.8 MB artifact, re-packed
// with a release number and a test key), a candidate whose OK/NG rule disagrees, a candidate that
// fails inference on bright frames only (its graph adds a Reshape whose shape depends on the pixels),
// device configs with a deploy directory, fast policies, and a recorder of deploy states.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeGraph, encodeModel } from '../../compiler/ops/onnx-proto.ts';
import { generateKeyPair, packArtifact, publicKeyPem, readArtifact, type KeyPair, type ManifestDraft, type Packed } from '../../runtime/artifact/index.ts';
import { decodePayload } from '../../runtime/schema/codec.ts';
import { DeployStatePayload, type DeployStatePayload as DeployState } from '../../runtime/schema/deploy.ts';
import { filters } from '../../runtime/mqtt/topics.ts';
import { parsePolicy, type RolloutPolicy, type RolloutPolicyInput } from '../../fleet/deploy/policy.ts';
import { record } from './brokers.ts';
import { repoPath } from './fixtures.ts';

const demo = readArtifact(readFileSync(repoPath('test/fixtures/garment-line/fmnist-vpt-deep.epk')), 'demo.epk');
const { schemaVersion: _s, model: _m, ...demoDraft } = demo.manifest;

/** The demo model as release `release` (version 1.<release>.0), signed by `key`; `over` changes the manifest. */
export function demoRelease(release: number, key: KeyPair | null, over: Partial<ManifestDraft> = {}, model: Uint8Array = demo.model): Packed {
  return packArtifact({ manifest: { ...(demoDraft as ManifestDraft), version: `1.${release}.0`, release, createdAt: '2026-12-01T00:00:00.000Z', ...over }, model }, key ? { privateKey: key.privateKey } : {});
}

/** Same model, but only `sandal` is a good part: its OK/NG decisions disagree with the demo model's. */
export const disagreeing = (release: number, key: KeyPair) => demoRelease(release, key, { thresholds: { okLabels: ['sandal'], minConfidence: 0.6 } });

/**
 * The demo graph plus a branch that adds 0 to both outputs, computed through
 * Reshape(1 element, [1 + (max pixel > 200)]): identical results on frames whose pixels are all
 * ≤ 200, an inference error (ORT: cannot reshape) on any brighter frame.
 */
export function failsOnBright(): Uint8Array {
  const g = decodeGraph(demo.model);
  const rename = new Map([['logits', 'logits_raw'], ['probs', 'probs_raw']]);
  for (const n of g.nodes) {
    n.outputs = n.outputs.map((o) => rename.get(o) ?? o);
    n.inputs = n.inputs.map((i) => rename.get(i) ?? i);
  }
  const f = (name: string, v: number[], shape: number[]) => ({ name, dtype: 'float32' as const, shape, data: new Float32Array(v) });
  g.initializers.push(f('fb_thr', [200], []), f('fb_one', [1], [1]), f('fb_zero', [0], []), { name: 'fb_i1', dtype: 'int64', shape: [1], ints: [1] }, { name: 'fb_axes', dtype: 'int64', shape: [1], ints: [0] });
  const node = (op: string, inputs: string[], out: string, attrs: Record<string, number | number[]> = {}) => g.nodes.push({ op, inputs, outputs: [out], attrs, name: `fb_${out}` });
  node('Cast', ['image'], 'fb_imgf', { to: 1 });
  node('ReduceMax', ['fb_imgf'], 'fb_max', { keepdims: 0 });
  node('Greater', ['fb_max', 'fb_thr'], 'fb_bright');
  node('Cast', ['fb_bright'], 'fb_flag', { to: 7 });
  node('Unsqueeze', ['fb_flag', 'fb_axes'], 'fb_flag1');
  node('Add', ['fb_flag1', 'fb_i1'], 'fb_shape');
  node('Reshape', ['fb_one', 'fb_shape'], 'fb_r');
  node('ReduceSum', ['fb_r'], 'fb_sum', { keepdims: 0 });
  node('Mul', ['fb_sum', 'fb_zero'], 'fb_z');
  node('Add', ['logits_raw', 'fb_z'], 'logits');
  node('Add', ['probs_raw', 'fb_z'], 'probs');
  return encodeModel(g);
}

export interface DeployKeys {
  release: KeyPair;
  releasePub: string;
}
export function deployKeys(): DeployKeys {
  const release = generateKeyPair();
  return { release, releasePub: publicKeyPem(release.publicKey) };
}

/** A policy for tests: one canary then everyone, small blocks, a short shadow and watch. */
export function fastPolicy(over: RolloutPolicyInput = {}): RolloutPolicy {
  return parsePolicy(
    {
      canary: 1,
      stages: [100],
      stageTimeoutS: 60,
      transfer: { via: 'mqtt', blockKiB: 16, stallS: 20 },
      shadow: { minFrames: 10, maxDurationS: 30, minDecisionAgreement: 0.97, maxNgRateDiffPt: 2 },
      watch: { durationS: 1, minFrames: 5, maxNgRateJumpPt: 50 },
      ...over,
    },
    '(test policy)',
  );
}

/** A device config (JSON, for a file or parseDeviceConfig) with a synthetic camera and a deploy directory. */
export function deviceJson(dir: string, device: string, url: string, over: Record<string, unknown> = {}) {
  return {
    device,
    artifact: join(dir, 'base.epk'),
    trustedKeys: [join(dir, 'release.pub')],
    profile: { schemaVersion: 1, name: 'test-cpu', arch: 'x64', precisions: ['fp32'], executionProviders: [{ name: 'cpu' }], threads: { intraOp: 1 }, warmupRuns: 1, maxBatch: 4 },
    cameras: [{ id: 'cam', kind: 'synthetic', fps: 20, pattern: 'bars', seed: 7 }],
    mqtt: { url, reconnectPeriodMs: 200 },
    outbox: { kind: 'memory' },
    health: { intervalMs: 0 },
    deploy: { dir: join(dir, `deploy-${device}`), retryMs: 1000 },
    ...over,
  };
}

/** Every retained/live deploy state on the broker, parsed; waitFor a device's state by predicate. */
export async function recordDeploy(url: string) {
  const r = await record(url, filters.deploy());
  const states = (device?: string): DeployState[] =>
    r.messages
      .filter((m) => m.payload.length > 0)
      .map((m) => decodePayload(DeployStatePayload, m.topic, m.payload))
      .flatMap((d) => (d.ok ? [d.value] : []))
      .filter((s) => device === undefined || s.device === device);
  return {
    ...r,
    states,
    last: (device: string) => states(device).at(-1) ?? null,
    async until(device: string, pred: (s: DeployState) => boolean, what: string, timeoutMs = 30_000): Promise<DeployState> {
      const m = await r.waitFor((x) => {
        if (x.payload.length === 0) return false;
        const d = decodePayload(DeployStatePayload, x.topic, x.payload);
        return d.ok && d.value.device === device && pred(d.value);
      }, `${device}: ${what}`, timeoutMs);
      return decodePayload(DeployStatePayload, m.topic, m.payload).ok ? (JSON.parse(m.payload.toString()) as DeployState) : (null as never);
    },
  };
}
