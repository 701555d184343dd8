// Crash safety of the install (runtime/deploy/store.ts, swap.ts): the store's file operations are
// stopped after every step of a deployment, in the middle of a durable write too, for both
// endings (committed, rolled back); a new store then opens the directory as a restarted device
// would. Whatever the step, state.json reads, names only files that exist with their sha256, the
// model it says runs is the old one or the new one, and no leftover remains.
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { signDeployment } from '../runtime/artifact/deployment.ts';
import { promote, rollback } from '../runtime/deploy/swap.ts';
import { DeployStore, realFs, type DeployRecord, type FsOps } from '../runtime/deploy/store.ts';
import type { ModelHost, Prepared } from '../runtime/session/host.ts';
import { buildDocument, type DeployFile } from '../fleet/deploy/document.ts';
import { demoRelease, deployKeys, fastPolicy } from './helpers/deploy.ts';
import { recordingLog } from './helpers/brokers.ts';
import { tempDir } from './helpers/runtime-models.ts';

class Crash extends Error {}
const hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** realFs that dies at operation `at` (0-based); `mid`: a durable write leaves its temporary file first. */
function crashingFs(at: number, mid: boolean): FsOps & { count: number } {
  const o = {
    count: 0,
    async step(f: () => Promise<void>, tmp?: () => Promise<void>) {
      if (o.count++ === at) {
        if (mid && tmp) await tmp();
        throw new Crash(`crash at step ${at}`);
      }
      await f();
    },
    writeDurable: (p: string, b: Uint8Array) => o.step(() => realFs.writeDurable(p, b), () => writeFile(`${p}.tmp-crash`, b.subarray(0, b.length >> 1))),
    renameDurable: (a: string, b: string) => o.step(() => realFs.renameDurable(a, b)),
    remove: (p: string) => o.step(() => realFs.remove(p)),
  };
  return o;
}

const keys = deployKeys();
const oldFile = demoRelease(1, keys.release).bytes;
const newFile = demoRelease(2, keys.release).bytes;
const file: Pick<DeployFile, 'bytes' | 'artifact'> = { bytes: newFile, artifact: { kind: 'model', name: 'demo-fmnist', version: '1.2.0', release: 2, sha256: hex(newFile), bytes: newFile.length } };
const signed = signDeployment(buildDocument(file, ['d1'], fastPolicy(), 'rcrash'), [keys.release.privateKey]);
const doc = JSON.parse(signed.document);
const running = { sha256: hex(oldFile), bytes: oldFile, manifest: { name: 'demo-fmnist', version: '1.1.0', release: 1 } };
const candidate = { sha256: hex(newFile), bytes: newFile, manifest: file.artifact, kind: 'model', task: null, covers: () => true } as unknown as Prepared;
// The host's part in promote/rollback is the in-memory swap; a crash loses it anyway.
const host = { shared: false, files: () => ({ model: running, packs: new Map() }), commit: async () => ({ previous: null }), load: async () => {} } as unknown as ModelHost;

/** A whole deployment through the store, as the agent drives it. */
async function deployment(store: DeployStore, ending: 'commit' | 'rollback'): Promise<void> {
  await store.open();
  const now = Date.now();
  const rec: DeployRecord = { rollout: 'rcrash', signed, state: 'downloading', accepted: true, startedAt: now, since: now, releaseBefore: 1, candidate: null, transfer: null, shadow: null, watch: null, reason: null };
  await store.save({ ...store.state, current: rec });
  const part = join(store.incomingDir, 'rcrash.part');
  await writeFile(part, newFile); // the transfer's writes (their crash safety is the bitmap's)
  await writeFile(join(store.incomingDir, 'rcrash.bitmap'), '{}');
  await store.save({ ...store.state, current: { ...rec, state: 'verifying' } });
  const name = await store.adopt(part, 'model', file.artifact.sha256);
  await store.remove(join(store.incomingDir, 'rcrash.bitmap'));
  await store.save({ ...store.state, current: { ...rec, state: 'shadow', candidate: { kind: 'model', name: 'demo-fmnist', version: '1.2.0', release: 2, sha256: file.artifact.sha256, file: name } } });
  await promote({ store, host, rec: store.state.current!, doc, candidate });
  const promoted = store.state.current!;
  if (ending === 'commit') {
    const final = { ...promoted, state: 'committed' as const };
    await store.save({ ...store.state, current: final, history: DeployStore.withHistory(store.state, final) });
  } else {
    await rollback({ store, host, rec: promoted, doc, standby: null, reason: { code: 'WATCH_NG_RATE', message: 'test' }, log: recordingLog().log, save: (s) => store.save(s) });
  }
  await store.collect();
}

for (const ending of ['commit', 'rollback'] as const) {
  test(`kill -9 at every step of a deployment (${ending}): the restarted device serves the old or the new model, never neither, and nothing is left over`, async (t) => {
    const count = crashingFs(-1, false);
    const { dir: probe, cleanup: c0 } = await tempDir('ep-store-');
    await deployment(new DeployStore(probe, count), ending);
    await c0();
    const steps = count.count;
    t.true(steps >= 8, `${steps} file operations`);
    for (let at = 0; at <= steps; at++) {
      for (const mid of [false, true]) {
        const { dir, cleanup } = await tempDir('ep-store-');
        await mkdir(dir, { recursive: true });
        const fs = crashingFs(at, mid);
        const finished = await deployment(new DeployStore(dir, fs), ending).then(() => true, (e: unknown) => {
          if (!(e instanceof Crash)) throw e;
          return false;
        });
        t.is(finished, at === steps, `step ${at}`);
        const store = new DeployStore(dir, realFs, recordingLog().log);
        const st = await store.open(); // the restart
        const where = `crash at step ${at}${mid ? ' (mid-write)' : ''}`;
        t.true(existsSync(join(dir, 'state.json')) || at === 0, `${where}: state.json`);
        const runs = st.active.model;
        const sha = runs ? hex(await readFile(store.pathOf(runs))) : running.sha256; // null: the configured (old) model
        t.true(sha === running.sha256 || sha === file.artifact.sha256, `${where}: serves the old or the new model`);
        if (runs) t.is(sha, runs.sha256, `${where}: the active file is intact`);
        if (st.previous.model) t.is(hex(await readFile(store.pathOf(st.previous.model))), st.previous.model.sha256, `${where}: the rollback copy is intact`);
        const c = st.current;
        if (c?.state === 'promoted') t.is(runs?.sha256, file.artifact.sha256, `${where}: promoted means the new model runs`);
        if (c?.state === 'shadow' || c?.state === 'promoted') t.is(hex(await readFile(store.pathOf(c.candidate!))), file.artifact.sha256, `${where}: the candidate is intact`);
        if (c?.state === 'rolled-back') t.is(runs?.sha256, running.sha256, `${where}: rolled back to the old model`);
        const named = new Set([st.active.model?.file, st.previous.model?.file, c && !['committed', 'rolled-back'].includes(c.state) ? `${file.artifact.sha256}.epk` : undefined].filter(Boolean));
        const files = await readdir(store.filesDir);
        t.deepEqual(files.filter((f) => !named.has(f)), [], `${where}: no leftover in files/`);
        t.deepEqual((await readdir(dir)).filter((f) => f.includes('.tmp-')), [], `${where}: no temporary file`);
        if (!c || ['committed', 'rolled-back'].includes(c.state)) t.deepEqual(await readdir(store.incomingDir), [], `${where}: no transfer left`);
        await cleanup();
      }
    }
  });
}
