// The .epk artifact: packing, reading, signing, and one test per way it can be refused.
import test from 'ava';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  ArtifactError,
  generateKeyPair,
  keyIdOf,
  loadTrustedKeys,
  packArtifact,
  publicKeyPem,
  readArtifact,
  readArtifactFile,
  readPrivateKey,
  readPublicKey,
  signArtifact,
  verifyArtifact,
  writeKeyPair,
  writeTar,
  type ArtifactErrorCode,
} from '../runtime/artifact/index.ts';
import { draft, tempDir } from './helpers/runtime-models.ts';

const run = promisify(execFile);
// A stand-in for model.onnx: the format does not look inside it (the session test uses real models).
const MODEL = new Uint8Array(3000).map((_, i) => (i * 7) % 256);
const alice = generateKeyPair();
const bob = generateKeyPair();

function packed(over = {}, key: typeof alice | null = alice) {
  return packArtifact({ manifest: draft(over), model: MODEL }, key ? { privateKey: key.privateKey } : {});
}

function throwsCode(t: import('ava').ExecutionContext, fn: () => unknown, code: ArtifactErrorCode, ...fragments: string[]) {
  const e = t.throws(fn, { instanceOf: ArtifactError });
  t.is(e?.code, code, e?.message);
  for (const f of fragments) t.true(e!.message.includes(f), `message should mention ${f}: ${e?.message}`);
  return e!;
}

/** Replaces the bytes of one entry's data in place (same length), keeping tar headers intact. */
function patchEntry(bytes: Buffer, name: string, edit: (data: Buffer) => void): Buffer {
  const copy = Buffer.from(bytes);
  const a = readArtifact(copy);
  const data = name === 'manifest.json' ? a.manifestBytes : a.model;
  edit(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  return copy;
}

test('pack → read → verify round trip; the model is an aligned view, not a copy', (t) => {
  const p = packed();
  const a = readArtifact(p.bytes, 'x.epk');
  t.is(a.manifest.name, 'fixture-vit');
  t.is(a.manifest.schemaVersion, 1);
  t.is(a.manifest.model.bytes, MODEL.length);
  t.deepEqual(Buffer.from(a.model), Buffer.from(MODEL));
  t.is(a.model.buffer, p.bytes.buffer, 'model.onnx must be a subarray of the file bytes');
  t.is((a.model.byteOffset - p.bytes.byteOffset) % 512, 0);
  t.is(a.sha256, p.sha256);
  const v = verifyArtifact(a, [alice.publicKey]);
  t.deepEqual({ verified: v.verified, keyId: v.keyId }, { verified: true, keyId: alice.keyId });
  t.deepEqual(p.keyIds, [alice.keyId]);
});

test('packing is deterministic (same inputs, same bytes)', (t) => {
  t.deepEqual(packed().bytes, packed().bytes);
});

test('tar tvf lists manifest.json, model.onnx, signature.json in order', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const f = join(dir, 'x.epk');
  await writeFile(f, packed().bytes);
  const { stdout } = await run('tar', ['tf', f]);
  t.deepEqual(stdout.trim().split('\n'), ['manifest.json', 'model.onnx', 'signature.json']);
  const { stdout: manifest } = await run('tar', ['xOf', f, 'manifest.json']);
  t.is(JSON.parse(manifest).model.sha256, readArtifact(packed().bytes).manifest.model.sha256);
});

test('not a tar: garbage, or a bare ONNX model', (t) => {
  throwsCode(t, () => readArtifact(Buffer.alloc(2048, 0x41), 'junk.epk'), 'ARTIFACT_NOT_TAR', 'junk.epk');
  throwsCode(t, () => readArtifact(Buffer.from([0x08, 0x08, ...new Array(1000).fill(1)]), 'm.onnx'), 'ARTIFACT_NOT_TAR', 'bare ONNX');
  throwsCode(t, () => readArtifact(Buffer.alloc(10), 'tiny.epk'), 'ARTIFACT_NOT_TAR', 'too short');
});

test('truncated: inside the model, and inside the end marker', (t) => {
  const b = packed().bytes;
  throwsCode(t, () => readArtifact(b.subarray(0, b.length - 2000), 'cut.epk'), 'ARTIFACT_TRUNCATED', 'model.onnx', 'cut short');
  throwsCode(t, () => readArtifact(b.subarray(0, b.length - 512), 'cut.epk'), 'ARTIFACT_TRUNCATED', 'end-of-archive');
});

test('missing entry and unexpected order', (t) => {
  const p = packed();
  const a = readArtifact(p.bytes);
  const onlyTwo = writeTar([{ name: 'manifest.json', data: a.manifestBytes }, { name: 'model.onnx', data: a.model }]);
  const e = throwsCode(t, () => readArtifact(onlyTwo, 'two.epk'), 'ARTIFACT_MISSING_ENTRY', 'signature.json');
  t.is(e.field, 'signature.json');
  const sig = Buffer.from(JSON.stringify(a.signature));
  const swapped = writeTar([{ name: 'model.onnx', data: a.model }, { name: 'manifest.json', data: a.manifestBytes }, { name: 'signature.json', data: sig }]);
  throwsCode(t, () => readArtifact(swapped, 'swapped.epk'), 'ARTIFACT_UNEXPECTED_ENTRY', 'in that order');
});

test('manifest: not JSON, wrong schemaVersion, invalid field (named)', (t) => {
  const a = readArtifact(packed().bytes);
  const withManifest = (m: Uint8Array) => writeTar([{ name: 'manifest.json', data: m }, { name: 'model.onnx', data: a.model }, { name: 'signature.json', data: Buffer.from(JSON.stringify(a.signature)) }]);
  throwsCode(t, () => readArtifact(withManifest(Buffer.from('{"name": ')), 'bad.epk'), 'MANIFEST_BAD_JSON', 'not JSON');
  const m = JSON.parse(Buffer.from(a.manifestBytes).toString());
  const v2 = throwsCode(t, () => readArtifact(withManifest(Buffer.from(JSON.stringify({ ...m, schemaVersion: 2 }))), 'v2.epk'), 'MANIFEST_SCHEMA_VERSION', 'schemaVersion is 2', 'update the runtime');
  t.is(v2.field, 'schemaVersion');
  throwsCode(t, () => readArtifact(withManifest(Buffer.from(JSON.stringify({ ...m, schemaVersion: undefined }))), 'v.epk'), 'MANIFEST_SCHEMA_VERSION', 'missing');
  const bad = { ...m, input: { ...m.input, channels: 4 }, thresholds: { okLabels: ['nope'], minConfidence: 2 } };
  const e = throwsCode(t, () => readArtifact(withManifest(Buffer.from(JSON.stringify(bad))), 'f.epk'), 'MANIFEST_INVALID', 'input.channels', 'thresholds.minConfidence');
  t.is(e.field, 'input.channels');
});

test('packArtifact validates the draft and names the field', (t) => {
  throwsCode(t, () => packArtifact({ manifest: draft({ labels: ['a', 'a'] }), model: MODEL }), 'MANIFEST_INVALID', 'labels[1]', 'duplicate');
  throwsCode(t, () => packArtifact({ manifest: draft({ precision: 'int8' }), model: MODEL }), 'MANIFEST_INVALID', 'metrics.int8');
  throwsCode(t, () => packArtifact({ manifest: draft({ thresholds: { okLabels: ['class99'], minConfidence: 0.5 } }), model: MODEL }), 'MANIFEST_INVALID', 'thresholds.okLabels[0]');
});

test('tampered model: digest mismatch at read time', (t) => {
  const b = patchEntry(packed().bytes, 'model.onnx', (d) => (d[100] ^= 0xff));
  throwsCode(t, () => readArtifact(b, 'tampered.epk'), 'MODEL_DIGEST_MISMATCH', 'tampered.epk', 'manifest.model.sha256');
});

test('tampered manifest (still valid JSON): signature invalid, naming manifest.json', (t) => {
  const b = patchEntry(packed().bytes, 'manifest.json', (d) => {
    const i = d.indexOf('fixture-vit');
    d.write('fixture-vIt', i);
  });
  const a = readArtifact(b, 'evil.epk');
  t.is(a.manifest.name, 'fixture-vIt');
  throwsCode(t, () => verifyArtifact(a, [alice.publicKey]), 'SIGNATURE_INVALID', 'manifest.json changed after signing');
});

test('model swapped together with its manifest digest: signature invalid', (t) => {
  const evil = packArtifact({ manifest: draft(), model: MODEL.map((x) => x ^ 1) }); // unsigned, consistent digest
  const good = readArtifact(packed().bytes);
  const e = readArtifact(evil.bytes);
  const frank = writeTar([{ name: 'manifest.json', data: e.manifestBytes }, { name: 'model.onnx', data: e.model }, { name: 'signature.json', data: Buffer.from(JSON.stringify(good.signature)) }]);
  throwsCode(t, () => verifyArtifact(readArtifact(frank, 'frank.epk'), [alice.publicKey]), 'SIGNATURE_INVALID', 'manifest.json and model.onnx changed');
});

test('wrong key: unknown key id, listing both sides', (t) => {
  const a = readArtifact(packed({}, bob).bytes, 'bob.epk');
  const e = throwsCode(t, () => verifyArtifact(a, [alice.publicKey]), 'SIGNATURE_UNKNOWN_KEY', bob.keyId, alice.keyId);
  t.true(e.message.includes('does not trust'));
});

test('several trusted keys: the signer is picked by key id', (t) => {
  const a = readArtifact(packed({}, bob).bytes);
  t.is(verifyArtifact(a, [alice.publicKey, bob.publicKey]).keyId, bob.keyId);
  const both = packArtifact({ manifest: draft(), model: MODEL }, { privateKey: [alice.privateKey, bob.privateKey] });
  t.deepEqual(both.keyIds, [alice.keyId, bob.keyId]);
  t.is(verifyArtifact(readArtifact(both.bytes), [bob.publicKey]).keyId, bob.keyId);
});

test('unsigned: refused when keys are configured; no keys needs allowUnsigned', (t) => {
  const a = readArtifact(packed({}, null).bytes, 'unsigned.epk');
  throwsCode(t, () => verifyArtifact(a, [alice.publicKey]), 'ARTIFACT_UNSIGNED', 'not signed');
  throwsCode(t, () => verifyArtifact(a, []), 'NO_TRUSTED_KEYS', 'allowUnsigned');
  t.deepEqual(verifyArtifact(a, [], { allowUnsigned: true }), { verified: false, keyId: null, keySource: null });
  // allowUnsigned never weakens a configured key list.
  throwsCode(t, () => verifyArtifact(a, [alice.publicKey], { allowUnsigned: true }), 'ARTIFACT_UNSIGNED');
});

test('signArtifact re-signs without touching manifest or model', (t) => {
  const a = readArtifact(packed({}, null).bytes);
  const s = signArtifact(a, bob.privateKey);
  const b = readArtifact(s.bytes);
  t.deepEqual(Buffer.from(b.manifestBytes), Buffer.from(a.manifestBytes));
  t.is(verifyArtifact(b, [bob.publicKey]).keyId, bob.keyId);
});

test('signature.json malformed', (t) => {
  const a = readArtifact(packed().bytes);
  const bad = writeTar([{ name: 'manifest.json', data: a.manifestBytes }, { name: 'model.onnx', data: a.model }, { name: 'signature.json', data: Buffer.from('{"schemaVersion":1}') }]);
  throwsCode(t, () => readArtifact(bad, 's.epk'), 'SIGNATURE_MALFORMED', 'signature.json', 'algorithm');
});

test('key files: write, read back, same key id; refuse to overwrite; bad PEM is KEY_INVALID', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const base = join(dir, 'release');
  const w = await writeKeyPair(alice, base);
  t.is(w.keyId, alice.keyId);
  t.is((await readPublicKey(w.publicPath)).keyId, alice.keyId);
  t.is(keyIdOf(await readPrivateKey(w.privatePath)), alice.keyId);
  const { stat } = await import('node:fs/promises');
  t.is((await stat(w.privatePath)).mode & 0o777, 0o600);
  await t.throwsAsync(writeKeyPair(bob, base), { code: 'KEY_EXISTS' } as never);
  t.is((await readPublicKey(w.publicPath)).keyId, alice.keyId, 'the existing key survives');
  const keys = await loadTrustedKeys([w.publicPath, publicKeyPem(bob.publicKey)]);
  t.deepEqual(keys.map((k) => k.keyId), [alice.keyId, bob.keyId]);
  await writeFile(join(dir, 'junk.pub'), 'not a key');
  await t.throwsAsync(readPublicKey(join(dir, 'junk.pub')), { code: 'KEY_INVALID' } as never);
  await t.throwsAsync(readPublicKey(join(dir, 'missing.pub')), { code: 'KEY_UNREADABLE' } as never);
  const { generateKeyPairSync } = await import('node:crypto');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
  t.throws(() => keyIdOf(rsa.publicKey), { code: 'KEY_INVALID', message: /ed25519/ } as never);
});

test('readArtifactFile: unreadable path', async (t) => {
  await t.throwsAsync(readArtifactFile('/nonexistent/model.epk'), { code: 'ARTIFACT_UNREADABLE', message: /\/nonexistent\/model\.epk.*ENOENT/ } as never);
});
