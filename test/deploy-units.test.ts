// The deployment contract's pure parts: signed documents and every refusal code, the rollout policy
// (errors naming file and field), the stage plan, the shadow criteria, the watch, block frames,
// and the block transfer against a lossy, reordering, duplicating channel with device restarts
// and stops (fast-check), which must end with the exact file and each block written once.
import test from 'ava';
import fc from 'fast-check';
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { checkDeploymentFor, parseDeployment, signDeployment, verifyDeployment } from '../runtime/artifact/deployment.ts';
import { generateKeyPair, loadTrustedKeys, privateKeyPem, publicKeyPem } from '../runtime/artifact/keys.ts';
import { judge } from '../runtime/deploy/shadow.ts';
import { BlockTransfer } from '../runtime/deploy/transfer-mqtt.ts';
import { WatchRun } from '../runtime/deploy/watch.ts';
import { decodeBlockFrame, encodeBlockFrame, ShadowPolicy, WatchPolicy, type DeploymentDocumentInput, type ShadowFigures } from '../runtime/schema/deploy.ts';
import { buildDocument } from '../fleet/deploy/document.ts';
import { planStages } from '../fleet/deploy/plan.ts';
import { loadPolicy, parsePolicy } from '../fleet/deploy/policy.ts';
import { demoRelease, fastPolicy } from './helpers/deploy.ts';
import { repoPath } from './helpers/fixtures.ts';
import { tempDir } from './helpers/runtime-models.ts';

const key = generateKeyPair();
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const bytes = randomBytes(100_000);
const file = { path: 'x.epk', bytes, artifact: { kind: 'model' as const, name: 'm', version: '1', release: 3, sha256: sha(bytes), bytes: bytes.length } };
const doc = (over: Partial<DeploymentDocumentInput> = {}): DeploymentDocumentInput => ({ ...buildDocument(file, ['d1', 'd2'], fastPolicy(), 'r1', 1_000_000), ...over });

test('a signed document verifies; changed, unsigned, untrusted or unparseable ones are refused with their codes', async (t) => {
  const trusted = await loadTrustedKeys([publicKeyPem(key.publicKey)]);
  const s = signDeployment(doc(), [key.privateKey]);
  t.is(verifyDeployment(s, trusted).keyId, key.keyId);
  t.is(parseDeployment(s).document.transfer.via, 'mqtt');
  const changed = { ...s, document: s.document.replace('"release":3', '"release":4') };
  t.throws(() => verifyDeployment(changed, trusted), { code: 'DEPLOY_SIGNATURE_INVALID' } as never);
  t.throws(() => verifyDeployment({ ...s, signatures: [] }, trusted), { code: 'DEPLOY_UNSIGNED' } as never);
  t.throws(() => verifyDeployment(signDeployment(doc(), [generateKeyPair().privateKey]), trusted), { code: 'DEPLOY_UNKNOWN_KEY', message: /does not trust/ } as never);
  t.throws(() => verifyDeployment(s, []), { code: 'DEPLOY_NO_TRUSTED_KEYS' } as never);
  t.throws(() => parseDeployment({ document: 'nope', signatures: [] }), { code: 'DEPLOY_DOCUMENT_INVALID', message: /not JSON/ } as never);
  const bad = (over: object, re: RegExp) => t.throws(() => signDeployment({ ...doc(), ...over } as never, [key.privateKey]), { code: 'DEPLOY_DOCUMENT_INVALID', message: re } as never);
  bad({ expiresAt: 1 }, /expiresAt: must be after issuedAt/);
  bad({ allowDowngrade: 'a'.repeat(64) }, /allowDowngrade: must equal artifact\.sha256/);
  bad({ targets: ['d1', 'd1'] }, /targets: lists a device twice/);
  bad({ surprise: 1 }, /Unrecognized key/);
  const d = doc();
  bad({ transfer: { ...d.transfer, blocks: (d.transfer as { blocks: string[] }).blocks.slice(1) } }, /transfer\.blocks: has 6 hashes; 100000 bytes in blocks of 16384 make 7/);
  t.throws(() => parseDeployment({ document: JSON.stringify({ ...doc(), v: 2 }), signatures: [] }), { message: /newer document version: update the device runtime/ } as never);
});

test('who and when: another device, an expired document, a document from the future', (t) => {
  const d = parseDeployment(signDeployment(doc(), [key.privateKey])).document;
  t.notThrows(() => checkDeploymentFor(d, 'd2', 1_000_001));
  t.throws(() => checkDeploymentFor(d, 'd9', 1_000_001), { code: 'DEPLOY_NOT_TARGETED', message: /is for d1, d2, not for d9/ } as never);
  t.throws(() => checkDeploymentFor(d, 'd1', d.expiresAt + 1), { code: 'DEPLOY_EXPIRED' } as never);
  t.throws(() => checkDeploymentFor(d, 'd1', d.issuedAt - 11 * 60_000), { code: 'DEPLOY_NOT_YET_VALID' } as never);
});

test('rollout policy: defaults, and errors naming the file and the field', async (t) => {
  const p = parsePolicy({}, 'p.yaml');
  t.is(p.canary, 1);
  t.deepEqual(p.stages, [100]);
  t.deepEqual(p.transfer, { via: 'mqtt', blockKiB: 64, maxKiBps: 0, stallS: 120, maxBadBlocks: 8 });
  t.is(p.shadow.minFrames, 500);
  t.is(p.shadow.minDecisionAgreement, 0.97);
  t.is(p.shadow.maxNgRateDiffPt, 2);
  const bad = (v: object, re: RegExp) => t.throws(() => parsePolicy(v, 'rollout.yaml'), { code: 'POLICY_INVALID', message: re } as never);
  bad({ stages: [50, 40, 100] }, /rollout\.yaml: .*stages\[1\]: 40 must be above the stage before \(50\)/);
  bad({ stages: [50] }, /stages\[0\]: the last stage must be 100/);
  bad({ transfer: { via: 'mqtt', blockKiB: 256 } }, /transfer\.blockKiB: /);
  bad({ shadow: { minFrame: 5 } }, /shadow: Unrecognized key: "minFrame"/);
  bad({ transfer: { via: 'ftp' } }, /transfer\.via/);
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writeFile(join(dir, 'p.yaml'), 'canary: [a\n');
  await t.throwsAsync(loadPolicy(join(dir, 'p.yaml')), { code: 'POLICY_INVALID', message: /p\.yaml: not valid YAML/ } as never);
  await t.throwsAsync(loadPolicy(join(dir, 'none.yaml')), { code: 'POLICY_INVALID', message: /none\.yaml: cannot read the rollout policy \(ENOENT\)/ } as never);
});

test('stages: the canary first, then cumulative percentages of all targets, in id order', (t) => {
  const ids = ['d5', 'd3', 'd1', 'd4', 'd2', 'd6', 'd7', 'd8', 'd9', 'd10'];
  t.deepEqual(planStages(ids, { canary: 1, stages: [30, 100] }), [
    { name: 'canary', devices: ['d1'] },
    { name: '30%', devices: ['d10', 'd2'] },
    { name: '100%', devices: ['d3', 'd4', 'd5', 'd6', 'd7', 'd8', 'd9'] },
  ]);
  t.deepEqual(planStages(['a', 'b', 'c'], { canary: ['c'], stages: [10, 100] }).map((s) => s.devices), [['c'], ['a', 'b']]);
  t.deepEqual(planStages(['a', 'b'], { canary: 0, stages: [100] }), [{ name: '100%', devices: ['a', 'b'] }]);
  t.throws(() => planStages(['a'], { canary: ['z'], stages: [100] }), { code: 'POLICY_INVALID', message: /canary names z, which is not among the targets/ } as never);
  t.throws(() => planStages([], { canary: 1, stages: [100] }), { code: 'NO_DEVICES' } as never);
});

const figures = (over: Partial<ShadowFigures>): ShadowFigures => ({ frames: 500, skipped: 0, errors: 0, decisionAgreement: 1, top1Agreement: 1, ngRate: { current: 0.03, candidate: 0.03 }, inferMs: { current: { p50: 1, p99: 2 }, candidate: { p50: 1, p99: 2 } }, ...over });

test('shadow criteria: each one can reject, with the figures in the message', (t) => {
  const p = ShadowPolicy.parse({ minTop1Agreement: 0.9, maxLatencyRatio: 1.5 });
  t.deepEqual(judge(figures({}), p), { ok: true });
  const code = (f: Partial<ShadowFigures>) => {
    const v = judge(figures(f), p);
    return v.ok ? 'ok' : `${v.code}: ${v.message}`;
  };
  t.regex(code({ decisionAgreement: 0.96 }), /^SHADOW_DISAGREES: OK\/NG decisions agree on 96\.0 % of 500 frames, below shadow\.minDecisionAgreement 97\.0 %/);
  t.regex(code({ top1Agreement: 0.5 }), /^SHADOW_TOP1_DISAGREES/);
  t.regex(code({ ngRate: { current: 0.03, candidate: 0.055 } }), /^SHADOW_NG_RATE: NG rate 5\.5 % against 3\.0 % now: 2\.5 points apart/);
  t.is(code({ ngRate: { current: 0.03, candidate: 0.049 } }), 'ok');
  t.regex(code({ inferMs: { current: { p50: 1, p99: 2 }, candidate: { p50: 2, p99: 3.2 } } }), /^SHADOW_TOO_SLOW: .*×1\.60/);
});

test('watch: inference errors, an NG-rate jump against the shadow, latency; the window ending commits', (t) => {
  const p = WatchPolicy.parse({ durationS: 10, minFrames: 10, maxErrors: 1, maxNgRateJumpPt: 5, maxInferP99Ms: 20 });
  const result = (decision: 'OK' | 'NG', inferMs = 5) => ({ input: { camera: 'c', decision, latency: { inferMs } } }) as never;
  const fail = { camera: 'c', error: Object.assign(new Error('boom'), { code: 'INFERENCE_FAILED' }) } as never;
  const w = new WatchRun(p, () => true, 0.1, 1000);
  for (let i = 0; i < 20; i++) w.result(result(i % 10 === 0 ? 'NG' : 'OK'));
  t.is(w.verdict(999), null);
  t.deepEqual(w.verdict(1000), { ok: true });
  w.failure(fail);
  t.is(w.verdict(999), null, 'one error is allowed');
  w.failure(fail);
  t.like(w.verdict(999), { ok: false, code: 'WATCH_INFERENCE_ERRORS' });
  const ng = new WatchRun(p, () => true, 0.1, 1000);
  for (let i = 0; i < 20; i++) ng.result(result(i % 4 === 0 ? 'NG' : 'OK'));
  t.like(ng.verdict(0), { ok: false, code: 'WATCH_NG_RATE' });
  const slow = new WatchRun(p, () => true, null, 1000);
  for (let i = 0; i < 20; i++) slow.result(result('OK', 30));
  t.like(slow.verdict(0), { ok: false, code: 'WATCH_LATENCY' });
  const other = new WatchRun(p, (c) => c !== 'c', null, 1000);
  other.failure(fail);
  other.failure(fail);
  t.is(other.verdict(0), null, 'cameras the deployment does not serve do not count');
});

test('block frames round-trip; anything else is not a frame', (t) => {
  const data = randomBytes(1000);
  const f = decodeBlockFrame(encodeBlockFrame({ rollout: 'r-1.x', index: 123456, data }))!;
  t.is(f.rollout, 'r-1.x');
  t.is(f.index, 123456);
  t.deepEqual(Buffer.from(f.data), data);
  t.is(decodeBlockFrame(Buffer.from('EPB1')), null);
  t.is(decodeBlockFrame(Buffer.from('garbage that is long enough')), null);
  t.is(decodeBlockFrame(Buffer.concat([Buffer.from('EPB1'), Buffer.from([200])])), null);
});

test('block transfer: any order, losses, duplicates, bad blocks, stops and resumes end with the exact file, each block written once', async (t) => {
  const { dir, cleanup } = await tempDir('ep-bt-');
  t.teardown(cleanup);
  const size = 16384;
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 300_000 }),
      fc.integer({ min: 1, max: 6 }),
      fc.array(fc.record({ drop: fc.boolean(), dup: fc.boolean(), bad: fc.boolean(), restart: fc.boolean() }), { minLength: 40, maxLength: 40 }),
      fc.integer({ min: 0, max: 2 ** 31 }),
      async (n, window, faults, seed) => {
        const src = randomBytes(n);
        const hashes: string[] = [];
        for (let at = 0; at < n; at += size) hashes.push(sha(src.subarray(at, at + size)));
        const base = join(dir, `t${run++}`);
        let q: number[] = [];
        let k = 0;
        let rnd = seed;
        const next = () => (rnd = (rnd * 1103515245 + 12345) % 2 ** 31);
        let bt: BlockTransfer;
        const make = () =>
          new BlockTransfer({ part: `${base}.part`, bitmap: `${base}.bitmap`, sha256: sha(src), totalBytes: n, blockBytes: size, hashes, window, retryMs: 5, stallMs: 10_000, maxBadBlocks: 1e6, request: (b) => ((q = [...q, ...b]), true) });
        bt = make();
        await bt.open();
        const done = bt.start();
        let finished = false;
        void done.then(() => (finished = true), () => {});
        for (let steps = 0; !finished && steps < 20_000; steps++) {
          if (q.length === 0) {
            await new Promise((r) => setTimeout(r, 6)); // the retry timer asks again
            continue;
          }
          const i = q.splice(next() % q.length, 1)[0]!;
          const fault = faults[k++ % faults.length]!;
          const data = src.subarray(i * size, (i + 1) * size);
          if (fault.restart && k % 7 === 0) {
            await bt.close(); // the device stops; a new process resumes from the bitmap
            bt = make();
            await bt.open();
            q = [];
            void bt.start().then(() => (finished = true), () => {});
            continue;
          }
          if (fault.drop) continue;
          if (fault.bad) bt.onFrame({ rollout: 'r', index: i, data: Buffer.concat([data.subarray(1), Buffer.from([1])]) });
          bt.onFrame({ rollout: 'r', index: i, data });
          if (fault.dup) bt.onFrame({ rollout: 'r', index: i, data });
          await new Promise((r) => setImmediate(r));
        }
        await new Promise((r) => setTimeout(r, 300));
        t.true(finished, 'the transfer completed');
        t.true((await readFile(`${base}.part`)).equals(src), 'the part file is the source');
        t.is(bt.figures.blocks, hashes.length);
        t.is(bt.figures.fetched, hashes.length, 'each block written once (a stopped transfer keeps what it wrote)');
      },
    ),
    { numRuns: 15 },
  );
});

test('edgeprompt deploy: bad input is one line naming the file and field, exit 2, before any broker is contacted', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const key = join(dir, 'release.key');
  await writeFile(key, privateKeyPem(generateKeyPair().privateKey));
  await writeFile(join(dir, 'unsigned.epk'), demoRelease(2, null).bytes);
  await writeFile(join(dir, 'ok.yaml'), 'canary: 1\n');
  await writeFile(join(dir, 'bad.yaml'), 'canary: 1\nstages: [50]\n');
  const cli = (...args: string[]) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', repoPath('cli/deploy.ts'), 'deploy', ...args], { timeout: 60_000 }).then(
      (r) => ({ code: 0, err: r.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, err: e.stderr }),
    );
  const url = ['--url', 'mqtt://127.0.0.1:1'];
  const policy = await cli(join(dir, 'unsigned.epk'), '--devices', 'd1', '--policy', join(dir, 'bad.yaml'), '--sign', key, ...url);
  t.is(policy.code, 2);
  t.regex(policy.err, /^edgeprompt: error \[POLICY_INVALID\]: .*bad\.yaml: invalid rollout policy: stages\[0\]: the last stage must be 100 \(every target\)\n$/);
  const unsigned = await cli(join(dir, 'unsigned.epk'), '--devices', 'd1', '--policy', join(dir, 'ok.yaml'), '--sign', key, ...url);
  t.is(unsigned.code, 2);
  t.regex(unsigned.err, /^edgeprompt: error \[ARTIFACT_UNSIGNED\]: .*unsigned\.epk: is not signed/);
  const missing = await cli(join(dir, 'unsigned.epk'), '--policy', join(dir, 'ok.yaml'), ...url);
  t.is(missing.code, 2);
  t.regex(missing.err, /required option '--devices <ids>' not specified/);
});
