// Promotion and rollback (docs/deploy.md "Install"). Both write state.json first and swap second:
//
// promote:  1. the running file is kept in files/ (the rollback copy; durable before it is named)
//           2. state.json: active = candidate, previous = that copy, highest release, `promoted`
//           3. ModelHost.commit: the candidate, loaded and warm since the shadow, is swapped in
//              between two batches; what it replaced stays loaded for an instant rollback
// rollback: 1. state.json: active = previous, `rolled-back` with the reason
//           2. the replaced model is swapped back (or loaded from the rollback copy after a restart)
//
// A kill -9 between 1 and 2 (or 2 and 3) restarts the device on what state.json names: the old model
// before the rename, the new one after; the deployment then runs its shadow or its watch again.

import type { Log } from '../log.ts';
import type { DeploymentDocument, DeployReason } from '../schema/deploy.ts';
import type { ModelHost, Prepared } from '../session/host.ts';
import { replaced } from './accept.ts';
import { DeployStore, releaseKey, type DeployRecord, type InstalledFile, type StoreState } from './store.ts';
import { DeployError } from '../schema/deploy.ts';

export interface PromoteInput {
  store: DeployStore;
  host: ModelHost;
  rec: DeployRecord;
  doc: DeploymentDocument;
  candidate: Prepared;
}

/** Returns what the candidate replaced, still loaded (null when nothing ran). */
export async function promote(x: PromoteInput): Promise<{ standby: Prepared | null }> {
  const { store, host, rec, doc } = x;
  const a = doc.artifact;
  const f = host.files();
  const running = replaced(doc, { shared: host.shared, model: f.model, packs: f.packs });
  let prev: InstalledFile | null = null;
  if (running) {
    const file = await store.keep(a.kind, running.sha256, running.bytes);
    prev = { kind: a.kind, name: running.manifest.name, version: running.manifest.version, release: running.manifest.release, sha256: running.sha256, file };
  }
  const st = store.state;
  const key = releaseKey(a.kind, a.name);
  const highest = a.release > (st.highest[key]?.release ?? -1) ? { ...st.highest, [key]: { release: a.release, sha256: a.sha256 } } : st.highest;
  const now = Date.now();
  const cand = rec.candidate!;
  const next: StoreState = {
    ...st,
    active: a.kind === 'model' ? { ...st.active, model: cand } : { ...st.active, packs: { ...st.active.packs, [a.name]: cand } },
    previous: a.kind === 'model' ? { ...st.previous, model: prev } : { ...st.previous, packs: withEntry(st.previous.packs, a.name, prev) },
    highest,
    current: { ...rec, state: 'promoted', since: now, watch: { frames: 0, errors: 0, ngRate: null, inferMs: null, endsAt: now + doc.watch.durationS * 1000 } },
  };
  await store.save(next);
  try {
    const { previous } = await host.commit(x.candidate, { keepPrevious: true });
    return { standby: previous };
  } catch (e) {
    throw new DeployError('PROMOTION_FAILED', `swapping the candidate in failed: ${(e as Error).message}`, { cause: e });
  }
}

export interface RollbackInput {
  store: DeployStore;
  host: ModelHost;
  rec: DeployRecord;
  doc: DeploymentDocument;
  /** What the promotion replaced, still loaded; null after a restart. */
  standby: Prepared | null;
  reason: DeployReason;
  log: Log;
  save(s: StoreState): Promise<void>;
}

export async function rollback(x: RollbackInput): Promise<void> {
  const { store, host, rec, doc } = x;
  const a = doc.artifact;
  const st = store.state;
  const prev = a.kind === 'model' ? st.previous.model : (st.previous.packs[a.name] ?? null);
  const final: DeployRecord = { ...rec, state: 'rolled-back', since: Date.now(), reason: x.reason };
  const active = a.kind === 'model' ? { ...st.active, model: prev } : { ...st.active, packs: withEntry(st.active.packs, a.name, prev) };
  const previous = a.kind === 'model' ? { ...st.previous, model: null } : { ...st.previous, packs: withEntry(st.previous.packs, a.name, null) };
  await x.save({ ...st, active, previous, current: final, history: DeployStore.withHistory(st, final) });
  try {
    if (x.standby) await host.commit(x.standby);
    else if (prev && !runs(host, prev)) await host.load(store.pathOf(prev));
  } catch (e) {
    x.log.error({ rollout: rec.rollout, err: (e as Error).message }, 'deploy: rolling back failed; the device keeps the promoted model until it restarts');
  }
}

function runs(host: ModelHost, f: InstalledFile): boolean {
  const x = host.files();
  return f.kind === 'model' ? x.model?.sha256 === f.sha256 : x.packs.get(f.name)?.sha256 === f.sha256;
}

function withEntry(m: Record<string, InstalledFile>, k: string, v: InstalledFile | null): Record<string, InstalledFile> {
  const out = { ...m };
  if (v === null) delete out[k];
  else out[k] = v;
  return out;
}
