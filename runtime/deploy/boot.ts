// Which model a device starts with when it accepts deployments: what the deploy store's
// state.json names as active (a deployed model, deployed packs), else the device config's. A
// deployed file that does not load (damaged disk) falls back to its rollback copy, then to the
// configured one, so the device always serves something; state.json is corrected to say what runs.

import type { Log } from '../log.ts';
import type { LoadedInfo, ModelHost } from '../session/host.ts';
import type { DeployStore, InstalledFile, StoreState } from './store.ts';

export async function loadInstalled(host: ModelHost, store: DeployStore, configArtifact: string, log: Log): Promise<LoadedInfo> {
  const st = store.state;
  const tries: { path: string; file: InstalledFile | null }[] = [];
  if (st.active.model) tries.push({ path: store.pathOf(st.active.model), file: st.active.model });
  if (st.previous.model && st.previous.model.sha256 !== st.active.model?.sha256) tries.push({ path: store.pathOf(st.previous.model), file: st.previous.model });
  tries.push({ path: configArtifact, file: null });
  let first: LoadedInfo | null = null;
  let used: InstalledFile | null = null;
  let lastError: unknown = null;
  for (const t of tries) {
    try {
      first = await host.load(t.path);
      used = t.file;
      break;
    } catch (e) {
      lastError = e;
      if (t.file) log.error({ file: t.path, err: (e as Error).message }, 'deploy: an installed model does not load; trying the previous one');
    }
  }
  if (!first) throw lastError;
  let next: StoreState = st;
  if (used?.sha256 !== st.active.model?.sha256) next = { ...next, active: { ...next.active, model: used } };

  const packs = { ...next.active.packs };
  for (const [name, f] of Object.entries(next.active.packs)) {
    const prev = next.previous.packs[name];
    const order = [f, ...(prev && prev.sha256 !== f.sha256 ? [prev] : [])];
    let ok = false;
    for (const p of order) {
      try {
        await host.load(store.pathOf(p));
        packs[name] = p;
        ok = true;
        break;
      } catch (e) {
        log.error({ file: store.pathOf(p), err: (e as Error).message }, 'deploy: an installed prompt pack does not load');
      }
    }
    if (!ok) delete packs[name]; // the configured pack runs
  }
  if (JSON.stringify(packs) !== JSON.stringify(next.active.packs)) next = { ...next, active: { ...next.active, packs } };
  if (next !== st) await store.save(next);
  return host.current === first.session ? first : { ...first, session: host.current! };
}
