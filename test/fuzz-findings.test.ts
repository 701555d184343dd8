// Bugs the fuzz targets (test/helpers/fuzz-targets.ts) found, one test each.

import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ArtifactError, readFileBytes } from '../runtime/artifact/index.ts';
import { loadDeviceConfig } from '../runtime/config/device-config.ts';
import { ConfigError } from '../runtime/config/errors.ts';
import { ModelHost } from '../runtime/session/host.ts';
import { freePort } from './helpers/brokers.ts';
import { cpuProfile } from './helpers/runtime-models.ts';

test('bug: reloading /dev/zero read it until memory ran out; a path that is not a regular file is ARTIFACT_UNREADABLE', async (t) => {
  for (const path of ['/dev/zero', '/dev/urandom', '/tmp']) {
    const e = await t.throwsAsync(readFileBytes(path), { instanceOf: ArtifactError });
    t.is(e?.code, 'ARTIFACT_UNREADABLE', path);
    t.regex(e?.message ?? '', /not a regular file/);
  }
});

test('bug: a reload from an unreachable URL failed as HANDLER_FAILED "fetch failed"; it is ARTIFACT_UNREADABLE naming the cause', async (t) => {
  const host = new ModelHost({ profile: cpuProfile(), trustedKeys: [], allowUnsigned: true });
  t.teardown(() => host.close());
  const url = `http://127.0.0.1:${await freePort()}/model.epk`; // nothing listens there
  const e = await t.throwsAsync(host.load(url));
  t.is((e as Error & { code?: string }).code, 'ARTIFACT_UNREADABLE');
  t.is(e?.message, `GET ${url}: ECONNREFUSED; check the URL and the network`);
});

test('bug: a YAML warning in a device config (unknown tag) went to stderr and the value was used; it is CONFIG_YAML naming the line', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ep-yaml-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'device.yaml');
  await writeFile(file, 'device: d1\nartifact: !weird model.epk\n');
  const e = t.throws(() => loadDeviceConfig(file), { instanceOf: ConfigError });
  t.is(e?.code, 'CONFIG_YAML');
  t.regex(e?.message ?? '', /device\.yaml: is not valid YAML: .*line 2/);
});
