// Commands: the dispatcher on its own (every command, every way to get one wrong), then over real
// brokers: aedes (MQTT 3.1.1, correlation by id) and mosquitto (MQTT v5 responseTopic + correlationData).

import test, { type ExecutionContext } from 'ava';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { dispatchCommand, type CommandContext, type CommandHandlers } from '../runtime/mqtt/commands.ts';
import { connectCommandClient } from '../runtime/mqtt/command-client.ts';
import { CommandError } from '../runtime/mqtt/errors.ts';
import { createMemoryOutbox } from '../runtime/mqtt/outbox-memory.ts';
import { startReporter, type Reporter } from '../runtime/mqtt/reporter.ts';
import { ReplyPayload, StatePayload, type ReplyPayload as Reply, type StateInput } from '../runtime/schema/payloads.ts';
import { MODEL, record, recordingLog, sampleState, startAedes, startMosquitto } from './helpers/brokers.ts';

const DEVICE = 'press-7';

/** A stand-in runtime: handlers that change state the way the real pipeline will. */
function handlers(calls: string[]): CommandHandlers {
  return {
    reload: (args, ctx) => {
      calls.push(`reload ${args.artifact ?? '(configured)'}`);
      if (args.artifact === '/bad.epa') throw new CommandError('ARTIFACT_UNVERIFIED', 'signature does not verify');
      ctx.setState({ model: { ...MODEL, version: '1.1.0' } });
      return { model: { ...MODEL, version: '1.1.0' }, ep: 'cpu' };
    },
    'set-threshold': (args, ctx) => {
      calls.push(`set-threshold ${args.camera ?? '*'} ${args.threshold}`);
      if (args.camera !== undefined && !ctx.state.cameras.includes(args.camera)) {
        throw new CommandError('CAMERA_UNKNOWN', `camera ${args.camera} is not configured`);
      }
      const th = ctx.state.thresholds;
      const thresholds =
        args.camera === undefined
          ? { ...th, default: args.threshold }
          : { ...th, cameras: { ...th.cameras, [args.camera]: args.threshold } };
      ctx.setState({ thresholds });
      return { thresholds };
    },
    snapshot: (args) => {
      calls.push(`snapshot ${args.camera} ${args.format}`);
      return {
        camera: args.camera,
        frameId: 'f9',
        captureTs: 1,
        contentType: args.format === 'png' ? 'image/png' : 'image/jpeg',
        dataBase64: Buffer.from('img').toString('base64'),
      };
    },
    pause: (args, ctx) => {
      calls.push(`pause ${args.camera ?? '*'}`);
      const s = args.camera ? { pausedCameras: [...new Set([...ctx.state.pausedCameras, args.camera])] } : { paused: true };
      ctx.setState(s);
      return { paused: ctx.state.paused, pausedCameras: ctx.state.pausedCameras };
    },
    resume: (args, ctx) => {
      calls.push(`resume ${args.camera ?? '*'}`);
      const s = args.camera
        ? { pausedCameras: ctx.state.pausedCameras.filter((c) => c !== args.camera) }
        : { paused: false, pausedCameras: [] };
      ctx.setState(s);
      return { paused: ctx.state.paused, pausedCameras: ctx.state.pausedCameras };
    },
  };
}

function context(): CommandContext & { changes: number } {
  let state: StateInput = sampleState();
  const ctx = {
    device: DEVICE,
    changes: 0,
    get state() {
      return state;
    },
    setState(p: Partial<StateInput>) {
      ctx.changes++;
      state = { ...state, ...p };
    },
  };
  return ctx;
}

async function dispatch(name: string, payload: string, opts: { retained?: boolean; h?: CommandHandlers } = {}) {
  const ctx = context();
  const calls: string[] = [];
  const reply = await dispatchCommand({
    name,
    payload: Buffer.from(payload),
    retained: opts.retained ?? false,
    handlers: opts.h ?? handlers(calls),
    ctx,
    now: () => 42,
  });
  t_valid(reply);
  return { reply, ctx, calls };
}
const t_valid = (r: Reply) => {
  if (!ReplyPayload.safeParse(r).success) throw new Error(`reply fails its own schema: ${JSON.stringify(r)}`);
};
const code = (r: Reply) => (r.ok ? 'OK' : r.error.code);

test('dispatch: every command runs its handler with parsed args and replies ok, echoing the id', async (t) => {
  const cases: [string, string, string][] = [
    ['reload', '{"id":"r1"}', 'reload (configured)'],
    ['reload', '{"artifact":"/models/v2.epa"}', 'reload /models/v2.epa'],
    ['set-threshold', '{"threshold":0.8}', 'set-threshold * 0.8'],
    ['set-threshold', '{"threshold":0.3,"camera":"cam2"}', 'set-threshold cam2 0.3'],
    ['snapshot', '{"camera":"cam1"}', 'snapshot cam1 jpeg'],
    ['snapshot', '{"camera":"cam1","format":"png"}', 'snapshot cam1 png'],
    ['pause', '{}', 'pause *'],
    ['pause', '{"camera":"cam1"}', 'pause cam1'],
    ['resume', '{"camera":"cam1"}', 'resume cam1'],
  ];
  for (const [name, payload, call] of cases) {
    const { reply, calls } = await dispatch(name, payload);
    t.true(reply.ok, `${name} ${payload}: ${JSON.stringify(reply)}`);
    t.is(reply.command, name);
    t.deepEqual(calls, [call]);
  }
  const { reply } = await dispatch('set-threshold', '{"threshold":0.3,"camera":"cam2","id":"abc"}');
  t.is(reply.id, 'abc');
  t.deepEqual(reply.ok && reply.command === 'set-threshold' && reply.data.thresholds, { default: 0.5, cameras: { cam2: 0.3 } });
});

test('dispatch: ping is answered without a handler; an empty payload counts as {}', async (t) => {
  const { reply } = await dispatch('ping', '', { h: { ping: () => ({ bootId: 'b', uptimeS: 3 }) } });
  t.like(reply, { ok: true, command: 'ping', data: { bootId: 'b', uptimeS: 3 } });
});

test('dispatch: malformed, unknown, invalid, unsupported and retained commands get error replies and change nothing', async (t) => {
  const cases: [string, string, string, RegExp, { retained?: boolean; h?: CommandHandlers }?][] = [
    ['pause', '{"camera":', 'BAD_JSON', /not JSON/],
    ['pause', '[1,2]', 'INVALID_ARGS', /expected object/],
    ['frobnicate', '{"id":"x1"}', 'UNKNOWN_COMMAND', /known: reload, set-threshold, snapshot, pause, resume, ping/],
    ['set-threshold', '{}', 'INVALID_ARGS', /threshold: /],
    ['set-threshold', '{"threshold":"high"}', 'INVALID_ARGS', /threshold: .*number/],
    ['set-threshold', '{"threshold":1.5}', 'INVALID_ARGS', /threshold: .*1/],
    ['set-threshold', '{"threshold":0.5,"camra":"cam1"}', 'INVALID_ARGS', /camra/],
    ['snapshot', '{"camera":"a/b"}', 'INVALID_ARGS', /camera: camera id "a\/b" contains "\/"/],
    ['snapshot', '{"camera":"cam1","format":"bmp"}', 'INVALID_ARGS', /format/],
    ['set-threshold', '{"threshold":0.5,"camera":"cam9"}', 'CAMERA_UNKNOWN', /cam9 is not configured/],
    ['reload', '{"artifact":"/bad.epa"}', 'ARTIFACT_UNVERIFIED', /signature/],
    ['snapshot', '{"camera":"cam1"}', 'NOT_SUPPORTED', /not supported/, { h: {} }],
    ['pause', '{}', 'RETAINED_IGNORED', /retained/, { retained: true }],
  ];
  for (const [name, payload, want, msg, opts] of cases) {
    const { reply, ctx } = await dispatch(name, payload, opts);
    t.is(code(reply), want, `${name} ${payload}`);
    t.regex(reply.ok ? '' : reply.error.message, msg, `${name} ${payload}`);
    t.is(ctx.changes, 0, `${name} ${payload} changed state`);
    t.deepEqual(ctx.state, sampleState());
  }
  const { reply } = await dispatch('frobnicate', '{"id":"x1"}');
  t.is(reply.id, 'x1', 'the id is echoed even for an unknown command');
});

test('dispatch: a throwing or lying handler becomes HANDLER_FAILED', async (t) => {
  const boom = await dispatch('pause', '{}', {
    h: {
      pause: () => {
        throw new TypeError('kaput');
      },
    },
  });
  t.like(boom.reply, { ok: false, error: { code: 'HANDLER_FAILED', message: 'command pause failed: kaput' } });
  const liar = await dispatch('pause', '{}', { h: { pause: () => ({ paused: 'yes' }) as never } });
  t.is(code(liar.reply), 'HANDLER_FAILED');
  t.regex(liar.reply.ok ? '' : liar.reply.error.message, /invalid reply: data\.paused/);
});

// ------------------------------------------------------------------ over a broker

function device(t: ExecutionContext, url: string, protocolVersion: 4 | 5): Reporter {
  const calls: string[] = [];
  const r = startReporter(
    { url, device: DEVICE, protocolVersion, reconnectPeriodMs: 50, healthIntervalMs: 0 },
    { outbox: createMemoryOutbox(), state: sampleState(), handlers: handlers(calls), log: recordingLog().log },
  );
  t.teardown(() => r.close());
  return r;
}

test('aedes (3.1.1): every command over the wire; bad ones change nothing and the state is republished only on change', async (t) => {
  const b = await startAedes();
  t.teardown(() => b.stop());
  // A retained command (left by a careless tool) would run again on every (re)subscribe: the device
  // gets it from the retained store when it subscribes, and refuses it.
  const raw = await record(b.url, `edgeprompt/v1/${DEVICE}/cmd/+/reply`);
  t.teardown(() => raw.close());
  await raw.client.publishAsync(`edgeprompt/v1/${DEVICE}/cmd/pause`, '{"id":"ret"}', { qos: 1, retain: true });
  const r = device(t, b.url, 4);
  await once(r, 'connect');
  const ret = await raw.waitFor((x) => (x.json() as { id?: string }).id === 'ret', 'retained pause reply');
  t.is(ReplyPayload.parse(ret.json()).ok ? 'OK' : (ret.json() as { error: { code: string } }).error.code, 'RETAINED_IGNORED');
  t.false(r.state.paused);
  const states = await record(b.url, `edgeprompt/v1/${DEVICE}/state`);
  t.teardown(() => states.close());
  await states.waitFor(() => true, 'retained state');
  const cc = await connectCommandClient({ url: b.url, protocolVersion: 4 });
  t.teardown(() => cc.close());

  t.like(await cc.send(DEVICE, 'ping'), { ok: true, command: 'ping', data: { bootId: r.bootId } });
  t.like(await cc.send(DEVICE, 'set-threshold', { threshold: 0.9 }), { ok: true, data: { thresholds: { default: 0.9 } } });
  t.like(await cc.send(DEVICE, 'pause', { camera: 'cam2' }), { ok: true, data: { pausedCameras: ['cam2'] } });
  t.like(await cc.send(DEVICE, 'resume', {}), { ok: true, data: { paused: false, pausedCameras: [] } });
  t.like(await cc.send(DEVICE, 'snapshot', { camera: 'cam1' }), { ok: true, data: { contentType: 'image/jpeg' } });
  t.like(await cc.send(DEVICE, 'reload', {}), { ok: true, data: { model: { version: '1.1.0' } } });
  const changed = await states.waitFor((m) => StatePayload.parse(m.json()).model?.version === '1.1.0', 'state after reload');
  t.is(StatePayload.parse(changed.json()).thresholds.default, 0.9);
  const before = states.messages.length;
  const snapshotOfState = structuredClone(r.state);

  // Raw publishes for what a typed client cannot send.
  const bad: [string, string, string][] = [
    ['set-threshold', '{"threshold": 7, "id": "b1"}', 'INVALID_ARGS'],
    ['pause', 'not json', 'BAD_JSON'],
    ['self-destruct', '{"id":"b3"}', 'UNKNOWN_COMMAND'],
    ['set-threshold', '{"threshold":0.1,"camera":"nope","id":"b4"}', 'CAMERA_UNKNOWN'],
  ];
  for (const [name, body] of bad) raw.client.publish(`edgeprompt/v1/${DEVICE}/cmd/${name}`, body, { qos: 1 });
  for (const [name, body, want] of bad) {
    const id = /"id":\s*"(\w+)"/.exec(body)?.[1] ?? null;
    const m = await raw.waitFor(
      (x) => x.topic === `edgeprompt/v1/${DEVICE}/cmd/${name}/reply` && (x.json() as { id: string | null }).id === id,
      `${name} reply`,
    );
    const reply = ReplyPayload.parse(m.json());
    t.false(reply.ok);
    t.is(reply.ok ? '' : reply.error.code, want, name);
  }
  t.deepEqual(r.state, snapshotOfState, 'nothing changed');
  t.like(await cc.send(DEVICE, 'ping'), { ok: true }); // and commands are still served
  t.is(states.messages.length, before, 'no state republished for refused commands');
});

test('mosquitto (v5): replies go to the responseTopic with the correlationData', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ep-mosq-cmd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const m = await startMosquitto({ dir });
  t.teardown(() => m.stop());
  const r = device(t, m.url, 5);
  await once(r, 'connect');
  const requester = await mqtt.connectAsync(m.url, { protocolVersion: 5, clientId: 'dashboard-1' });
  t.teardown(() => requester.endAsync());
  await requester.subscribeAsync('dashboards/1/inbox', { qos: 1 });
  const got = new Promise<[string, Buffer, Buffer | undefined]>((resolve) =>
    requester.on('message', (topic, payload, packet) => resolve([topic, payload, packet.properties?.correlationData])),
  );
  await requester.publishAsync(`edgeprompt/v1/${DEVICE}/cmd/set-threshold`, '{"threshold":0.25}', {
    qos: 1,
    properties: { responseTopic: 'dashboards/1/inbox', correlationData: Buffer.from([1, 2, 3]) },
  });
  const [topic, payload, cd] = await got;
  t.is(topic, 'dashboards/1/inbox');
  t.deepEqual(cd, Buffer.from([1, 2, 3]));
  t.like(ReplyPayload.parse(JSON.parse(payload.toString())), { ok: true, id: null, command: 'set-threshold' });
  t.is(r.state.thresholds.default, 0.25);

  const cc = await connectCommandClient({ url: m.url, protocolVersion: 5 });
  t.teardown(() => cc.close());
  t.like(await cc.send(DEVICE, 'ping'), { ok: true, data: { bootId: r.bootId } });
});
