// The fuzz targets (issue: reliability hardening, "fuzzing"): every parser a device or the compiler
// runs on input from outside, fed by fast-check. Each target is one row of FUZZ_TARGETS: how to set
// it up, what to feed it (mostly a valid input mutated, some pure noise), how to run one input, and
// for the live ones a check that the device still serves afterwards. test/helpers/fuzz.ts runs the
// table; test/fuzz.test.ts with a short budget, bench/fuzz.ts for N seconds per target.
//
// Extension point: a new parser gets a row here (`target(name, what, setup)`), like the deployment
// documents and transfer blocks of runtime/deploy/ (rows `deploy-document` and `transfer-block`).

import fc from 'fast-check';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import YAML from 'yaml';
import { encodeSafetensors } from '../../compiler/backbones/safetensors.ts';
import { loadCompileConfig } from '../../compiler/config/compile-config.ts';
import { buildDocument } from '../../fleet/deploy/document.ts';
import { checkDeploymentFor, parseDeployment, signDeployment, verifyDeployment } from '../../runtime/artifact/deployment.ts';
import { loadTrustedKeys } from '../../runtime/artifact/keys.ts';
import { BlockTransfer } from '../../runtime/deploy/transfer-mqtt.ts';
import { decodeBlockFrame, encodeBlockFrame } from '../../runtime/schema/deploy.ts';
import { MockSerialBus } from '../../devices/serial/mock-link.ts';
import { PlcHandshake } from '../../devices/serial/plc.ts';
import { generateKeyPair, packPromptPack, publicKeyPem, readPromptPack, readSignedFile, readTar, verifyArtifact } from '../../runtime/artifact/index.ts';
import { parseManifest } from '../../runtime/artifact/manifest.ts';
import { parsePackTensors } from '../../runtime/artifact/prompt-pack.ts';
import { readArtifact } from '../../runtime/artifact/read.ts';
import { Runtime } from '../../runtime/app/runtime.ts';
import { loadDeviceConfig, parseDeviceConfig } from '../../runtime/config/device-config.ts';
import { ReplyPayload } from '../../runtime/schema/payloads.ts';
import { VERSION } from '../../runtime/version.ts';
import { recordingLog, startAedes } from './brokers.ts';
import { fastPolicy } from './deploy.ts';
import { makeArtifact, writeArtifact } from './runtime-models.ts';

/** One fuzzing session of a target: what to feed, how to run one input, whether it still works after. */
export interface FuzzSession<T = unknown> {
  input: fc.Arbitrary<T>;
  /** Returns when the input is accepted; throws when refused (a refusal must carry an UPPER_SNAKE `code`). */
  run(x: T): unknown;
  /** After the runs: null when the target still works (the running model serves), else what is wrong. */
  healthy?(): Promise<string | null>;
  close?(): Promise<void>;
}
export interface FuzzTarget {
  name: string;
  what: string;
  setup(): Promise<FuzzSession<unknown>>;
}

/** A table row: the session's input type stays inside the row. */
function target<T>(name: string, what: string, setup: () => Promise<FuzzSession<T>>): FuzzTarget {
  return { name, what, setup: async () => (await setup()) as unknown as FuzzSession<unknown> };
}

// ------------------------------------------------------------------ inputs built from valid ones

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = (string | number)[];

function paths(v: Json, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
  return out;
}

function edit(doc: Json, path: Path, f: (parent: Record<string | number, Json>, key: string | number) => void): Json {
  if (path.length === 0) return doc;
  const copy = structuredClone(doc);
  let node = copy as Record<string | number, Json>;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, Json>;
  f(node, path.at(-1)!);
  return copy;
}

/** A valid JSON document with 1–3 edits (a value replaced by any JSON, a key deleted, a key added), or any JSON. */
export function mutatedJson(valid: Json): fc.Arbitrary<Json> {
  const all = paths(valid);
  const objects = all.filter((p) => {
    let n: Json = valid;
    for (const k of p) n = (n as Record<string | number, Json>)[k]!;
    return n !== null && typeof n === 'object' && !Array.isArray(n);
  });
  const op = fc.oneof(
    fc.record({ p: fc.constantFrom(...all), v: fc.jsonValue() }).map(({ p, v }) => (d: Json) => (p.length ? edit(d, p, (o, k) => (o[k] = v as Json)) : (v as Json))),
    fc.constantFrom(...all).map((p) => (d: Json) => edit(d, p, (o, k) => (Array.isArray(o) ? o.splice(Number(k), 1) : delete o[k]))),
    fc.record({ p: fc.constantFrom(...objects), k: fc.string({ maxLength: 12 }), v: fc.jsonValue() }).map(({ p, k, v }) => (d: Json) => edit(d, [...p, k], (o, key) => (o[key] = v as Json))),
  );
  return fc.oneof(
    { weight: 8, arbitrary: fc.array(op, { minLength: 1, maxLength: 3 }).map((ops) => ops.reduce((d, f) => {
      try {
        return f(d);
      } catch {
        return d; // an edit under a path an earlier edit removed
      }
    }, valid)) },
    { weight: 1, arbitrary: fc.jsonValue() as fc.Arbitrary<Json> },
  );
}

/** Valid bytes with a few bytes changed, cut short, or with bytes inserted; or any bytes. */
export function mutatedBytes(valid: Uint8Array): fc.Arbitrary<Uint8Array> {
  const n = valid.length;
  return fc.oneof(
    { weight: 4, arbitrary: fc.array(fc.tuple(fc.nat(n - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }).map((flips) => {
      const b = Uint8Array.from(valid);
      for (const [at, v] of flips) b[at] = v;
      return b;
    }) },
    { weight: 2, arbitrary: fc.nat(n).map((k) => valid.slice(0, k)) },
    { weight: 1, arbitrary: fc.tuple(fc.nat(n), fc.uint8Array({ minLength: 1, maxLength: 600 })).map(([at, extra]) => Buffer.concat([valid.subarray(0, at), extra, valid.subarray(at)])) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2048 }) },
  );
}

const json = (x: Json) => Buffer.from(JSON.stringify(x));
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const blockSource = randomBytes(100_000);

/** A deployment document for d1 and d2 (fleet's builder, blocks of 16 KiB). */
function deployDoc() {
  const bytes = blockSource;
  const file = { bytes, artifact: { kind: 'model' as const, name: 'm', version: '1', release: 3, sha256: sha(bytes), bytes: bytes.length } };
  return buildDocument(file, ['d1', 'd2'], fastPolicy({ transfer: { via: 'mqtt', blockKiB: 16 } }), 'r1', 1_000_000);
}
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

// ------------------------------------------------------------------ the targets

const key = generateKeyPair();
const artifact = makeArtifact({}, { privateKey: key.privateKey });
const packTensors = encodeSafetensors(new Map([['prompts', { shape: [2, 4], data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]) }], ['head.weight', { shape: [3, 4], data: new Float32Array(12).fill(0.5) }]]));
const pack = packPromptPack(
  {
    manifest: {
      name: 'task-a', version: '1', labels: ['ok', 'dent', 'scratch'], thresholds: { minConfidence: 0 }, method: { name: 'vpt-deep', options: { prompts: 2 } },
      backbone: { arch: 'vit_micro_patch4_32', sha256: 'a'.repeat(64), model: 'c'.repeat(64) }, prompts: { sha256: 'b'.repeat(64) },
      metrics: { fp32: { top1: 0.9, maxLogitDiff: 1e-5 } }, compiler: { version: VERSION, ortVersion: '1.30.0' }, createdAt: '2026-01-02T03:04:05.000Z',
    },
    tensors: packTensors,
  },
  { privateKey: key.privateKey },
);

const originalArtifact = readArtifact(artifact.bytes, 'model.epk');
const originalPack = readPromptPack(pack.bytes, 'task.epp');

/** Parses bytes, verifies the signature: a mutation may only pass if what was signed is unchanged. */
function verifySigned(bytes: Uint8Array): void {
  const f = readSignedFile(bytes, 'fuzz.epk');
  verifyArtifact(f.kind === 'pack' ? f.pack : f.artifact, [key.publicKey]);
  const [m0, b0] = f.kind === 'pack' ? [originalPack.manifestBytes, originalPack.tensorBytes] : [originalArtifact.manifestBytes, originalArtifact.model];
  const [m1, b1] = f.kind === 'pack' ? [f.pack.manifestBytes, f.pack.tensorBytes] : [f.artifact.manifestBytes, f.artifact.model];
  if (!same(m0, m1) || !same(b0, b1)) throw new Error('a changed signed file verified');
}

const validDevice: Json = {
  device: 'press-7',
  artifact: 'model.epk',
  trustedKeys: ['-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----'],
  profile: 'x86-cpu',
  cameras: [{ id: 'cam1', kind: 'ffmpeg', input: { kind: 'url', url: 'rtsp://10.0.0.5/stream' }, watchdog: { stallMs: 2000, backoff: { initialMs: 250, maxMs: 1000 } } }, { id: 'cam2', kind: 'synthetic', fps: 30 }],
  triggers: { cam1: { kind: 'serial', serial: { link: { kind: 'serialport', path: '/dev/ttyUSB0', baudRate: 115200 }, reject: { delayMs: 300 } } } },
  mqtt: { url: 'mqtts://broker:8883', protocolVersion: 5 },
  outbox: { kind: 'file', dir: '/var/lib/edgeprompt/outbox', maxEntries: 1000 },
  health: { intervalMs: 5000 },
};

/** Writes each input to one temp file (the config loaders read files: the boundary is the file). */
async function textFile(): Promise<{ path: string; write: (text: string) => Promise<void>; close: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'ep-fuzz-'));
  const path = join(dir, 'config.yaml');
  return { path, write: (text) => writeFile(path, text), close: () => rm(dir, { recursive: true, force: true }) };
}

const yamlOrText = (valid: Json) =>
  fc.oneof(
    { weight: 6, arbitrary: mutatedJson(valid).map((d) => YAML.stringify(d)) },
    { weight: 2, arbitrary: fc.tuple(fc.constant(YAML.stringify(valid)), fc.nat(), fc.string({ maxLength: 20 })).map(([s, at, ins]) => s.slice(0, at % (s.length + 1)) + ins + s.slice(at % (s.length + 1))) },
    { weight: 1, arbitrary: fc.string({ maxLength: 400 }) },
  );

export const FUZZ_TARGETS: FuzzTarget[] = [
  target('manifest', 'artifact manifest.json (parseManifest): a valid manifest with edits, or any bytes', async () => ({
    input: fc.oneof(mutatedJson(JSON.parse(Buffer.from(originalArtifact.manifestBytes).toString()) as Json).map(json), mutatedBytes(originalArtifact.manifestBytes)),
    run: (b: Uint8Array) => parseManifest(b, 'manifest.json'),
  })),
  target('tar', 'the .epk/.epp tar container (readTar): a valid artifact with bytes changed, cut or inserted', async () => ({
    input: mutatedBytes(artifact.bytes),
    run: (b: Uint8Array) => readTar(b, 'fuzz.epk'),
  })),
  target('artifact', 'a signed artifact (read + verify): any change to what was signed must be refused', async () => ({
    input: mutatedBytes(artifact.bytes),
    run: verifySigned,
  })),
  target('prompt-pack', 'a signed prompt pack (readPromptPack, verify) and its tensors.safetensors (parsePackTensors)', async () => ({
    input: fc.oneof(mutatedBytes(pack.bytes).map((b) => ({ b, tensorsOnly: false })), mutatedBytes(packTensors).map((b) => ({ b, tensorsOnly: true }))),
    run: ({ b, tensorsOnly }: { b: Uint8Array; tensorsOnly: boolean }) => (tensorsOnly ? parsePackTensors(b, 'fuzz.epp') : verifySigned(b)),
  })),
  target('device-config', 'device config YAML (loadDeviceConfig): a valid config with edits, the text with a string inserted, or any text', async () => {
    const f = await textFile();
    return {
      input: yamlOrText(validDevice),
      run: async (text: string) => {
        await f.write(text);
        return loadDeviceConfig(f.path);
      },
      close: f.close,
    };
  }),
  target('compile-config', 'compile config YAML (loadCompileConfig), likewise', async () => {
    const f = await textFile();
    const valid = YAML.parse(await readFile(join(import.meta.dirname, '../../configs/fmnist-vpt-deep.yaml'), 'utf8')) as Json;
    return {
      input: yamlOrText(valid),
      run: async (text: string) => {
        await f.write(text);
        return loadCompileConfig(f.path);
      },
      close: f.close,
    };
  }),
  target('serial-line', 'bytes from the PLC into a running PLC handshake (mock serial link): it must still answer PING with PONG', async () => {
    const bus = new MockSerialBus();
    const peer = bus.createPort('/dev/ttyFUZZ');
    const plc = new PlcHandshake(bus.link({ path: '/dev/ttyFUZZ' }), { captureTimeoutMs: 200, resultTimeoutMs: 300, ackTimeoutMs: 200 });
    await plc.start();
    let pongs = 0;
    peer.on('line', (l: string) => void (l === 'PONG' && pongs++));
    const tokens = fc.constantFrom('TRIG', 'ACK', 'PING', 'trig', 'RESULT', '1', 'a.b-c_9', '../x', ' ', '  ', '\r', '\n', '\r\n', '\u0000', '\u00ff', 'X'.repeat(300));
    return {
      input: fc.oneof(fc.array(tokens, { maxLength: 12 }).map((t) => t.join(' ')), fc.string({ maxLength: 300 }), fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('latin1'))),
      run: async (text: string) => {
        await peer.send(text);
      },
      healthy: async () => {
        const before = pongs;
        await peer.send('\r\nPING\r\n');
        const end = Date.now() + 5000;
        while (pongs === before && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
        return pongs > before ? null : 'no PONG after the fuzzed input';
      },
      close: () => plc.stop(),
    };
  }),
  target('deploy-document', 'a signed deployment document (parseDeployment, verifyDeployment, checkDeploymentFor): the document or its envelope with edits; a changed document must never verify', async () => {
    const trusted = await loadTrustedKeys([publicKeyPem(key.publicKey)]);
    const signed = signDeployment(deployDoc(), [key.privateKey]);
    const inner = JSON.parse(signed.document) as Json;
    return {
      input: fc.oneof(
        mutatedJson(inner).map((d) => ({ ...signed, document: JSON.stringify(d) }) as Json),
        mutatedJson(signed as unknown as Json),
      ),
      run: (x: Json) => {
        const { signed: s, document } = parseDeployment(x);
        verifyDeployment(s, trusted);
        checkDeploymentFor(document, 'd1', document.issuedAt + 1);
        if (s.document !== signed.document) throw new Error('a changed deployment document verified');
      },
    };
  }),
  target('transfer-block', 'block frames into a running MQTT block transfer (decodeBlockFrame, BlockTransfer.onFrame): valid frames with bytes changed, cut or inserted; afterwards the real blocks must still complete the file, byte-exact', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ep-fuzz-blocks-'));
    const size = 16 * 1024;
    const src = blockSource;
    const hashes = Array.from({ length: Math.ceil(src.length / size) }, (_, i) => sha(src.subarray(i * size, (i + 1) * size)));
    // No stall bound: the fuzzed frames are almost never a valid new block, and a transfer that takes
    // none for stallMs is dropped as stalled, as designed (bug: with 600 s it ended the 600-s run's
    // transfer before the final check, and the target read as no longer serving).
    const bt = new BlockTransfer({ part: join(dir, 'r.part'), bitmap: join(dir, 'r.bitmap'), sha256: sha(src), totalBytes: src.length, blockBytes: size, hashes, window: 4, retryMs: 60_000, stallMs: Number.MAX_SAFE_INTEGER, maxBadBlocks: Number.MAX_SAFE_INTEGER, request: () => true });
    await bt.open();
    const done = bt.start();
    const frame = (i: number) => encodeBlockFrame({ rollout: 'r1', index: i, data: src.subarray(i * size, (i + 1) * size) });
    const frames = hashes.map((_, i) => frame(i));
    return {
      // A block once taken makes later frames for it duplicates (not checked again): the checks are
      // fuzzed while blocks are still missing, which is most of the run.
      input: fc.constantFrom(...frames).chain((f) => mutatedBytes(f)),
      run: (b: Uint8Array) => {
        const f = decodeBlockFrame(b);
        if (f === null) bt.badFrame('not a block frame');
        else bt.onFrame(f);
      },
      healthy: async () => {
        for (const f of frames) bt.onFrame(decodeBlockFrame(f)!);
        const ok = await Promise.race([done.then(() => true, (e: Error) => e.message), new Promise((r) => setTimeout(() => r('not done 10 s after every real block'), 10_000))]);
        if (ok !== true) return String(ok);
        const got = await readFile(join(dir, 'r.part'));
        return sha(got) === sha(src) ? null : 'the transferred file differs from the source';
      },
      close: async () => {
        await bt.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }),
  target('mqtt-command', 'MQTT command payloads to a running device (aedes, synthetic camera, the fixture model): every one answered, ok or with a code; the model keeps serving', liveDevice),
];

/** A running device on an in-process broker; each input is one command, answered on its reply topic. */
async function liveDevice(): Promise<FuzzSession<[string, Buffer]>> {
  const dir = await mkdtemp(join(tmpdir(), 'ep-fuzz-rt-'));
  await writeArtifact(dir, 'model.epk', artifact);
  await writeFile(join(dir, 'not-an-artifact.epk'), 'hello');
  const broker = await startAedes();
  const cfg = parseDeviceConfig(
    {
      device: 'fz',
      artifact: 'model.epk',
      trustedKeys: [publicKeyPem(key.publicKey)],
      profile: { schemaVersion: 1, name: 'test-cpu', arch: 'x64', precisions: ['fp32'], executionProviders: [{ name: 'cpu' }], threads: { intraOp: 1 }, warmupRuns: 1 },
      cameras: [{ id: 'a', kind: 'synthetic', fps: 20, pattern: 'bars', seed: 3 }],
      mqtt: { url: broker.url, protocolVersion: 4, reconnectPeriodMs: 100 },
      outbox: { kind: 'memory' },
      health: { intervalMs: 0 },
    },
    join(dir, 'device.yaml'),
  );
  const rt = await Runtime.start(cfg, { log: recordingLog().log });
  const client = mqtt.connect(broker.url, { protocolVersion: 4, clientId: 'fuzzer' });
  await new Promise((r) => client.once('connect', r));
  const replies: Buffer[] = [];
  let results = 0;
  let wake: (() => void) | null = null;
  client.on('message', (topic, payload) => {
    if (topic.endsWith('/result')) results++;
    else replies.push(payload);
    wake?.();
  });
  await client.subscribeAsync(['edgeprompt/v1/fz/cmd/+/reply', 'edgeprompt/v1/fz/+/result'], { qos: 1 });
  const model = rt.host.current?.ref.sha256;
  // Not the empty name: aedes 1.2 drops the connection of a persistent subscriber when it routes
  // …/cmd/ (an empty last level) to it; mosquitto delivers it and the device answers UNKNOWN_COMMAND.
  const names = fc.oneof(fc.constantFrom('reload', 'set-threshold', 'snapshot', 'pause', 'resume', 'trigger', 'ping'), fc.stringMatching(/^[a-z-]{1,16}$/));
  const args = fc.oneof(
    mutatedJson({ threshold: 0.5, camera: 'a', id: 'x1' }),
    mutatedJson({ artifact: 'not-an-artifact.epk' }),
    fc.record({ artifact: fc.constantFrom('/dev/zero', '/dev/urandom', '/', '/etc/hostname', 'model.epk', 'missing.epk', 'http://127.0.0.1:1/x.epk', 'file:///dev/zero') }),
    mutatedJson({ camera: 'a', format: 'png' }),
  );
  const payload = fc.oneof({ weight: 6, arbitrary: args.map((a) => json(a)) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) });
  const waitReply = async (ms: number): Promise<Buffer | null> => {
    const end = Date.now() + ms;
    while (replies.length === 0 && Date.now() < end) await new Promise<void>((r) => ((wake = r), setTimeout(r, 50)));
    return replies.shift() ?? null;
  };
  return {
    input: fc.tuple(names, payload),
    run: async ([name, body]: [string, Buffer]) => {
      client.publish(`edgeprompt/v1/fz/cmd/${name}`, body, { qos: 1 });
      const raw = await waitReply(10_000);
      if (raw === null) throw new Error(`no reply to ${name} ${body.toString().slice(0, 80)} within 10 s`);
      const reply = ReplyPayload.parse(JSON.parse(raw.toString()));
      // A refusal reply is the device refusing: counted by its code (the runner checks the code's form).
      if (!reply.ok) throw Object.assign(new Error(reply.error.message), { code: reply.error.code });
    },
    healthy: async () => {
      client.publish('edgeprompt/v1/fz/cmd/resume', '{}', { qos: 1 });
      await waitReply(5000);
      const before = results;
      const end = Date.now() + 10_000;
      while (results < before + 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      if (results < before + 3) return `the device stopped serving (${results - before} results in 10 s after resume)`;
      const now = rt.host.current?.ref.sha256;
      return now === model ? null : `the model changed: ${model} -> ${now}`;
    },
    close: async () => {
      await client.endAsync(true);
      await rt.stop();
      await broker.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
