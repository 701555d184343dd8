// Task updates on a shared backbone: a prompt pack is deployed like a model (release per task), is
// shadowed on the cameras that run its task, swapped in between frames, and a pack compiled for
// another backbone is refused after its transfer with PACK_BACKBONE_MISMATCH, the running pack kept.
import test from 'ava';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readModelArtifact, type BackboneArtifact } from '../runtime/artifact/index.ts';
import { Runtime } from '../runtime/app/runtime.ts';
import { parseDeviceConfig } from '../runtime/config/device-config.ts';
import { subscribeResults } from '../runtime/mqtt/client.ts';
import type { ResultPayload } from '../runtime/schema/payloads.ts';
import { runRollout } from '../fleet/deploy/controller.ts';
import { recordingLog, startMosquitto, until } from './helpers/brokers.ts';
import { deployKeys, deviceJson, fastPolicy, recordDeploy } from './helpers/deploy.ts';
import { tempDir } from './helpers/runtime-models.ts';
import { backboneArtifact, backbonePackTask, promptPack } from './helpers/backbone-pack-models.ts';

test('a prompt pack release is deployed to the cameras running its task; a pack for another backbone is refused', async (t) => {
  t.timeout(120_000);
  const keys = deployKeys();
  const sign = { privateKey: keys.release.privateKey };
  const [A, B] = await Promise.all([backbonePackTask(11, { classes: 10 }), backbonePackTask(12, { classes: 4 })]);
  const bbBytes = backboneArtifact(A, sign).bytes;
  const model = (readModelArtifact(bbBytes) as BackboneArtifact).manifest.model.sha256;
  const { dir, cleanup } = await tempDir('ep-deploy-packs-');
  t.teardown(cleanup);
  await writeFile(join(dir, 'backbone.epk'), bbBytes);
  await writeFile(join(dir, 'a1.epp'), promptPack(A, model, { name: 'task-a', version: '1', release: 1 }, sign).bytes);
  await writeFile(join(dir, 'b1.epp'), promptPack(B, model, { name: 'task-b', version: '1', release: 1 }, sign).bytes);
  await writeFile(join(dir, 'a2.epp'), promptPack(B, model, { name: 'task-a', version: '2', release: 2, labels: A.labels.slice(0, 4) }, sign).bytes);
  await writeFile(join(dir, 'a3.epp'), promptPack(A, 'e'.repeat(64), { name: 'task-a', version: '3', release: 3 }, sign).bytes);
  await writeFile(join(dir, 'release.pub'), keys.releasePub);
  const broker = await startMosquitto({ dir });
  t.teardown(() => broker.stop());
  const cfg = parseDeviceConfig(
    deviceJson(dir, 'dev-p', broker.url, {
      artifact: 'backbone.epk',
      pack: 'a1.epp',
      packs: { cam2: 'b1.epp' },
      cameras: [
        { id: 'cam1', kind: 'synthetic', fps: 20, pattern: 'bars', seed: 3 },
        { id: 'cam2', kind: 'synthetic', fps: 20, seed: 4 },
      ],
    }),
    join(dir, 'device.yaml'),
  );
  const results: ResultPayload[] = [];
  const sub = subscribeResults({ url: broker.url, device: 'dev-p', clientId: 'sub-p' }, (m) => void results.push(m.result));
  await sub.ready;
  t.teardown(() => sub.close());
  const deploy = await recordDeploy(broker.url);
  t.teardown(() => deploy.close());
  const rt = await Runtime.start(cfg, { log: recordingLog().log });
  t.teardown(() => rt.stop());
  await until(() => results.filter((r) => r.camera === 'cam2').length >= 3, 'results', 20_000);

  // Another task's labels decide differently: the shadow compares only cam1's frames, with a lenient policy.
  const policy = fastPolicy({ shadow: { minFrames: 10, minDecisionAgreement: 0, maxNgRateDiffPt: 100 } });
  const r = await runRollout({ connection: { url: broker.url }, file: join(dir, 'a2.epp'), devices: 'dev-p', policy, signKeys: [keys.release.privateKey], print: () => {} });
  t.is(r.outcome, 'completed', JSON.stringify(r.devices['dev-p']));
  const st = r.devices['dev-p']!.status!;
  t.deepEqual([st.artifact.kind, st.artifact.name, st.releaseBefore, st.artifact.release], ['pack', 'task-a', 1, 2]);
  await until(() => results.some((x) => x.prompt?.version === '2'), 'results of the new pack', 10_000);
  t.true(results.filter((x) => x.prompt?.version === '2').every((x) => x.camera === 'cam1'), 'only the camera running task-a');
  const packs = deploy.last('dev-p')!.installed.packs.map((p) => `${p.name}@${p.release}`).sort();
  t.deepEqual(packs, ['task-a@2', 'task-b@1']);

  const bad = await runRollout({ connection: { url: broker.url }, file: join(dir, 'a3.epp'), devices: 'dev-p', policy, signKeys: [keys.release.privateKey], print: () => {} });
  t.is(bad.outcome, 'aborted');
  t.is(bad.devices['dev-p']!.status!.reason!.code, 'PACK_BACKBONE_MISMATCH');
  const n = results.length;
  await until(() => results.length > n + 5, 'results go on', 10_000);
  t.true(results.slice(n).filter((x) => x.camera === 'cam1').every((x) => x.prompt?.version === '2'));
  await rt.stop({ drainMs: 3000 });
  const files = (await readdir(join(cfg.deploy!.dir, 'files'))).sort();
  t.is(files.length, 2, `the deployed pack and its rollback copy only: ${files.join(', ')}`);
  const seqs = results.map((x) => x.seq).sort((a, b) => a - b);
  t.deepEqual(seqs.filter((s, i) => i > 0 && s !== seqs[i - 1]! + 1 && s !== seqs[i - 1]), []);
});
