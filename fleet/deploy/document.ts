// The deployment document a rollout signs (runtime/schema/deploy.ts): the file pinned by size and
// sha256 (and, over MQTT, the sha256 of every block), the targets, the rules devices apply, and an
// expiry. The rollout id is derived from what the rollout is (file, release, targets, policy), so a
// controller restarted with the same command continues the same rollout.

import { createHash } from 'node:crypto';
import { readFileBytes } from '../../runtime/artifact/container.ts';
import { readSignedFile, type Signed } from '../../runtime/artifact/read.ts';
import { sha256 } from '../../runtime/artifact/signature.ts';
import { DeployError, type DeployArtifact, type DeploymentDocumentInput } from '../../runtime/schema/deploy.ts';
import type { RolloutPolicy } from './policy.ts';

export interface DeployFile {
  path: string;
  bytes: Buffer;
  artifact: DeployArtifact;
  /** What its signature covers (verifyArtifact). */
  signed: Signed;
}

/** Reads the .epk/.epp to deploy: a fused model or a prompt pack (a shared backbone is not deployed on its own). */
export async function readDeployFile(path: string): Promise<DeployFile> {
  const bytes = await readFileBytes(path, 'file to deploy');
  const f = readSignedFile(bytes, path);
  if (f.kind === 'backbone') {
    throw new DeployError('DEPLOY_KIND_MISMATCH', `${path}: is a shared backbone; a rollout deploys a fused model (.epk) or a prompt pack (.epp) for a running backbone`);
  }
  const m = f.kind === 'pack' ? f.pack.manifest : f.artifact.manifest;
  return { path, bytes, signed: f.kind === 'pack' ? f.pack : f.artifact, artifact: { kind: f.kind === 'pack' ? 'pack' : 'model', name: m.name, version: m.version, release: m.release, sha256: sha256(bytes).toString('hex'), bytes: bytes.length } };
}

export function rolloutIdOf(file: Pick<DeployFile, 'artifact'>, targets: readonly string[], policy: RolloutPolicy): string {
  const what = JSON.stringify({ sha256: file.artifact.sha256, release: file.artifact.release, targets: [...targets].sort(), policy });
  return `r${createHash('sha256').update(what).digest('hex').slice(0, 12)}`;
}

export function buildDocument(file: Pick<DeployFile, 'bytes' | 'artifact'>, targets: readonly string[], policy: RolloutPolicy, rollout: string, now = Date.now()): DeploymentDocumentInput {
  const t = policy.transfer;
  let transfer: DeploymentDocumentInput['transfer'];
  if (t.via === 'mqtt') {
    const size = t.blockKiB * 1024;
    const blocks: string[] = [];
    for (let at = 0; at < file.bytes.length; at += size) blocks.push(sha256(file.bytes.subarray(at, at + size)).toString('hex'));
    transfer = { via: 'mqtt', blockBytes: size, blocks, stallS: t.stallS, maxBadBlocks: t.maxBadBlocks };
  } else transfer = { via: 'http', url: t.url, stallS: t.stallS };
  return {
    v: 1,
    rollout,
    issuedAt: now,
    expiresAt: now + Math.round(policy.expiresInH * 3_600_000),
    targets: [...targets].sort(),
    artifact: file.artifact,
    ...(policy.allowDowngrade && { allowDowngrade: file.artifact.sha256 }),
    transfer,
    shadow: policy.shadow,
    watch: policy.watch,
  };
}
