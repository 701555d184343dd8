// Whether a device takes a signed deployment document, checked in this order (docs/deploy.md
// "Refusals"): a valid document; signed by a trusted key; for this device and not expired; not a
// rollout it already ran; nothing else in progress; the kind of file this device runs; not a
// downgrade; room on disk. Each refusal is a DeployError with its code; the running model is not
// touched and nothing is written but the refusal itself.

import { checkDeploymentFor, parseDeployment, verifyDeployment } from '../artifact/deployment.ts';
import type { TrustedKey } from '../artifact/keys.ts';
import { DeployError, isFinalPhase, type DeploymentDocument, type DeployPhase, type SignedDocument } from '../schema/deploy.ts';
import { releaseKey, type DeployStore } from './store.ts';

interface RunningFile {
  sha256: string;
  bytes: Uint8Array;
  manifest: { name: string; version: string; release: number };
}

/** What the device runs (ModelHost.files(), ModelHost.shared). */
export interface Running {
  shared: boolean;
  model: RunningFile | null;
  packs: ReadonlyMap<string, RunningFile>;
}

export type Acceptance =
  /** This rollout was accepted before: answer with its state, start nothing. */
  | { kind: 'known'; state: DeployPhase }
  /** The exact file already runs: nothing to do. */
  | { kind: 'installed'; releaseBefore: number }
  | { kind: 'start'; releaseBefore: number | null };

export interface AcceptContext {
  device: string;
  trusted: readonly TrustedKey[];
  store: DeployStore;
  running: Running;
  reserveBytes: number;
  now?: number;
}

/** The file a document replaces, if one runs. */
export function replaced(doc: DeploymentDocument, running: Running): RunningFile | null {
  const a = doc.artifact;
  if (a.kind === 'pack') return running.packs.get(a.name) ?? null;
  return running.model;
}

/** Parses, verifies and checks a signed document; throws the refusal, else says what to do. */
export async function accept(signed: SignedDocument, ctx: AcceptContext): Promise<{ doc: DeploymentDocument; outcome: Acceptance }> {
  const { document: doc } = parseDeployment(signed);
  verifyDeployment(signed, ctx.trusted);
  checkDeploymentFor(doc, ctx.device, ctx.now);
  const st = ctx.store.state;
  const cur = st.current;
  if (cur?.accepted && cur.rollout === doc.rollout) return { doc, outcome: { kind: 'known', state: cur.state } };
  const past = st.history.findLast((h) => h.rollout === doc.rollout);
  if (past) return { doc, outcome: { kind: 'known', state: past.state } };
  if (cur && !isFinalPhase(cur.state)) {
    throw new DeployError('DEPLOY_BUSY', `rollout ${cur.rollout} is in progress here (${cur.state}); rollout ${doc.rollout} can start when it is over`);
  }

  const a = doc.artifact;
  const r = ctx.running;
  if (a.kind === 'model' && r.shared) {
    throw new DeployError('DEPLOY_KIND_MISMATCH', `rollout ${doc.rollout} deploys a model artifact, but this device runs the shared backbone ${r.model?.manifest.name ?? '?'} with prompt packs: deploy prompt packs (.epp) to it`);
  }
  if (a.kind === 'pack' && !r.shared) {
    throw new DeployError('DEPLOY_KIND_MISMATCH', `rollout ${doc.rollout} deploys the prompt pack ${a.name}, but this device runs the fused artifact ${r.model?.manifest.name ?? '?'}: packs run on a shared backbone`);
  }
  if (a.kind === 'pack' && !r.packs.has(a.name)) {
    throw new DeployError('DEPLOY_KIND_MISMATCH', `rollout ${doc.rollout} updates the task ${a.name}, but this device runs no pack of that name (it runs ${[...r.packs.keys()].join(', ') || 'none'}); assign a new task in the device config`);
  }

  const now = replaced(doc, r);
  const releaseBefore = now && now.manifest.name === a.name ? now.manifest.release : null;
  if (now?.sha256 === a.sha256) return { doc, outcome: { kind: 'installed', releaseBefore: now.manifest.release } };
  const key = releaseKey(a.kind, a.name);
  const saved = st.highest[key];
  // The highest release accepted: saved at promotions, or what runs (a device's first model).
  const top = releaseBefore !== null && (saved === undefined || releaseBefore > saved.release) ? { release: releaseBefore, sha256: now!.sha256 } : saved;
  const downgradeOk = doc.allowDowngrade === a.sha256;
  if (top && a.release < top.release && !downgradeOk) {
    throw new DeployError(
      'DOWNGRADE_REFUSED',
      `${a.kind} ${a.name} release ${a.release} is older than release ${top.release}, the highest this device accepted; a downgrade needs allowDowngrade for this exact file (sha256 ${a.sha256.slice(0, 16)}…) in the signed document`,
    );
  }
  if (top && a.release > 0 && a.release === top.release && top.sha256 !== a.sha256 && !downgradeOk) {
    throw new DeployError('RELEASE_CONFLICT', `${a.kind} ${a.name} release ${a.release} was accepted here as another file (sha256 ${top.sha256.slice(0, 16)}…, this one ${a.sha256.slice(0, 16)}…); give the new build a new release number`);
  }

  // The running file is copied into files/ as the rollback copy, unless it is there already.
  const stored = [st.active.model, st.previous.model, ...Object.values(st.active.packs), ...Object.values(st.previous.packs)];
  const copy = now && !stored.some((f) => f?.sha256 === now.sha256) ? now.bytes.length : 0;
  const need = a.bytes + copy + ctx.reserveBytes;
  const free = await ctx.store.freeBytes();
  if (free < need) {
    throw new DeployError('DISK_FULL', `${ctx.store.dir} has ${mb(free)} free; the deployment needs ${mb(a.bytes)} for the file${copy ? ` and ${mb(copy)} for the rollback copy` : ''} and leaves deploy.reserveBytes (${mb(ctx.reserveBytes)}) free`);
  }
  return { doc, outcome: { kind: 'start', releaseBefore } };
}

const mb = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
