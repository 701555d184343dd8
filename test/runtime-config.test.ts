// The device config: the shipped examples parse; every kind of mistake is an error naming the file
// and the field path (with the bad value), so an operator can fix it without reading code.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../runtime/config/errors.ts';
import { loadDeviceConfig, parseDeviceConfig } from '../runtime/config/device-config.ts';
import { repoPath } from './helpers/fixtures.ts';
import { tempDir } from './helpers/runtime-models.ts';

const base = () => ({
  device: 'press-7',
  artifact: 'model.epk',
  profile: 'x86-cpu',
  cameras: [{ id: 'cam1', kind: 'synthetic' }],
  mqtt: { url: 'mqtt://127.0.0.1:1883' },
  outbox: { kind: 'file', dir: 'outbox' },
});

function fails(t: import('ava').ExecutionContext, raw: unknown, ...expect: [field: string, fragment: RegExp][]) {
  const e = t.throws(() => parseDeviceConfig(raw, '/etc/edgeprompt/device.yaml'), { instanceOf: ConfigError });
  t.is(e!.code, 'CONFIG_INVALID', e!.message);
  t.true(e!.message.startsWith('/etc/edgeprompt/device.yaml: invalid device config'), e!.message);
  for (const [field, fragment] of expect) {
    const issue = e!.issues.find((i) => i.field === field);
    t.truthy(issue, `expected an issue for ${field}; got ${JSON.stringify(e!.issues)}`);
    if (issue) t.regex(issue.message, fragment);
    // One problem fits on one line; several get a header and one indented line each.
    t.true(e!.message.includes(expect.length === 1 && e!.issues.length === 1 ? `invalid device config: ${field}: ` : `\n  ${field}: `), `the message lists the field: ${e!.message}`);
  }
  return e!;
}

test('the shipped device configs parse; paths resolve next to the config file', (t) => {
  const jetson = loadDeviceConfig(repoPath('configs/device.yaml'));
  t.is(jetson.device, 'press-7');
  t.is(jetson.profile.name, 'jetson-orin-nano');
  t.deepEqual(jetson.cameras.map((c) => c.id), ['line1', 'station2']);
  t.is(jetson.triggers.line1!.kind, 'free-run');
  t.is(jetson.triggers.station2!.kind, 'serial');
  t.true(jetson.resizeFromModel.has('station2'), 'resize left out: the model decides');
  t.is(jetson.mqtt.clientId, undefined);
  const dev = loadDeviceConfig(repoPath('configs/device-dev.yaml'));
  t.is(dev.artifact, repoPath('out/model.epk'));
  t.is(dev.trustedKeys[0], repoPath('keys/line1.pub'), 'the key the README makes with keys new');
  t.is(dev.outbox.kind === 'file' && dev.outbox.dir, repoPath('state/outbox'));
  const cam = dev.cameras[0]!;
  t.is(cam.kind === 'ffmpeg' && cam.input.kind === 'file' && cam.input.path, repoPath('out/line.mp4'), 'the video data line-video writes');
});

test('unknown fields, wrong kinds and bad values are named with their path', (t) => {
  fails(t, { ...base(), artefact: 'x' }, ['artefact', /unknown field; did you mean "artifact"\?/]);
  fails(t, { ...base(), cameras: [{ id: 'cam1', kind: 'usb' }] }, ['cameras[0].kind', /must be one of ffmpeg \| gstreamer \| folder \| synthetic \(got "usb"\)/]);
  fails(t, { ...base(), cameras: [{ id: 'cam1', kind: 'ffmpeg', input: { kind: 'file' } }] }, ['cameras[0].input.path', /nothing|expected string/]);
  fails(t, { ...base(), mqtt: { url: 'http://broker' } }, ['mqtt.url', /mqtt:\/\/host/]);
  fails(t, { ...base(), mqtt: { url: 'mqtt://b', keepalive: 3 } }, ['mqtt.keepalive', /unknown field; did you mean "keepaliveS"\?/]);
  fails(t, { ...base(), outbox: { kind: 'flie', dir: 'x' } }, ['outbox.kind', /\(got "flie"\); did you mean "file"\?/]);
  fails(t, { ...base(), outbox: { kind: 'file' } }, ['outbox.dir', /expected string/]);
  fails(t, { ...base(), device: 'press/7' }, ['device', /press\/7/]);
  fails(t, { ...base(), health: { intervalMs: -5 } }, ['health.intervalMs', />=0|too small/i]);
});

test('cross-field checks: camera ids, triggers and rejects for cameras that do not exist', (t) => {
  fails(
    t,
    { ...base(), cameras: [{ id: 'cmd', kind: 'synthetic' }, { id: 'cmd', kind: 'synthetic' }] },
    ['cameras[0].id', /reserved|cmd/],
    ['cameras[1].id', /used twice/],
  );
  fails(t, { ...base(), triggers: { cam2: { kind: 'free-run' } } }, ['triggers.cam2', /not in cameras \(cam1\)/]);
  fails(t, { ...base(), triggers: { cam1: { kind: 'serial', serial: { link: { kind: 'serialport' } } } } }, ['triggers.cam1.serial.link.path', /expected string/]);
  fails(
    t,
    { ...base(), triggers: { cam1: { kind: 'serial', serial: { link: { kind: 'serialport', path: '/dev/ttyS0' } } } }, rejects: { cam1: { link: { kind: 'serialport', path: '/dev/ttyS1' }, delayMs: 10 } } },
    ['rejects.cam1', /serial PLC trigger/],
  );
});

test('profile: unknown name lists the known ones; an inline profile is validated too', (t) => {
  const e = t.throws(() => parseDeviceConfig({ ...base(), profile: 'jetson-xavier' }, 'dev.yaml'), { instanceOf: ConfigError });
  t.is(e!.code, 'PROFILE_NOT_FOUND');
  t.regex(e!.message, /^dev\.yaml: profile "jetson-xavier" not found.*known profiles: jetson-agx-orin, jetson-orin-nano, x86-cpu/);
  fails(t, { ...base(), profile: { schemaVersion: 1, name: 'p', arch: 'x64', precisions: ['fp64'], executionProviders: [{ name: 'cpu' }] } }, ['profile.precisions[0]', /fp32/]);
  fails(
    t,
    { ...base(), profile: { schemaVersion: 1, name: 'p', arch: 'x64', precisions: ['fp32'], executionProviders: [{ name: 'cuda', fp16: true }] } },
    ['profile.executionProviders[0].fp16', /unknown field/],
  );
});

test('files: unreadable and invalid YAML name the file (and the line)', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const missing = t.throws(() => loadDeviceConfig(join(dir, 'nope.yaml')), { instanceOf: ConfigError });
  t.is(missing!.code, 'CONFIG_UNREADABLE');
  t.regex(missing!.message, /nope\.yaml: cannot read \(ENOENT\)/);
  const f = join(dir, 'device.yaml');
  await writeFile(f, 'device: press-7\ncameras:\n  - id: a\n   kind: synthetic\n');
  const bad = t.throws(() => loadDeviceConfig(f), { instanceOf: ConfigError });
  t.is(bad!.code, 'CONFIG_YAML');
  t.regex(bad!.message, /device\.yaml: is not valid YAML: .*line 4/);
  await writeFile(f, 'device: press-7\ndevice: press-8\n');
  t.regex(t.throws(() => loadDeviceConfig(f))!.message, /unique/);
  await writeFile(f, 'device: press-7\n');
  const partial = t.throws(() => loadDeviceConfig(f), { instanceOf: ConfigError });
  t.deepEqual(partial!.issues.map((i) => i.field).sort(), ['artifact', 'cameras', 'mqtt', 'outbox', 'profile']);
});
