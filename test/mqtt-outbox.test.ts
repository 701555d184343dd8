// The Outbox contract (docs/style.md "Durable messaging", rule 5): one suite, run against the memory and the file
// outbox and the keep spool (runtime/keep/spool.ts, its own tests in keep-spool.test.ts). Then what only the file
// outbox promises: reopen, compaction, torn lines, kill -9.

import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { once } from 'node:events';
import { MqttOptionsError, OutboxError } from '../runtime/mqtt/errors.ts';
import type { Outbox, OutboxLimits } from '../runtime/mqtt/outbox.ts';
import { openOutbox } from '../runtime/mqtt/outbox-config.ts';
import { openFileOutbox } from '../runtime/mqtt/outbox-file.ts';
import { createMemoryOutbox } from '../runtime/mqtt/outbox-memory.ts';
import { openSpool } from '../runtime/keep/spool.ts';

const rec = (i: number, size = 10) => ({ topic: `t/${i}`, payload: Buffer.alloc(size, 65 + (i % 26)) });
const ids = (o: Outbox) => [...o.entries()].map((e) => e.id);

async function tempDir(t: ExecutionContext) {
  const dir = await mkdtemp(join(tmpdir(), 'ep-outbox-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

type Factory = (t: ExecutionContext, limits?: OutboxLimits) => Promise<Outbox>;
const factories: Record<string, Factory> = {
  memory: async (_t, limits) => createMemoryOutbox(limits),
  file: async (t, limits) => {
    const o = await openFileOutbox({ dir: await tempDir(t), ...limits });
    t.teardown(() => o.close());
    return o;
  },
  spool: async (t, limits) => {
    const o = await openSpool({ dir: await tempDir(t), ...limits });
    t.teardown(() => o.close());
    return o;
  },
};

for (const [kind, make] of Object.entries(factories)) {
  test(`${kind}: put takes nextId synchronously; ids are monotonic and size/bytes follow`, async (t) => {
    const o = await make(t);
    t.is(o.nextId, 0);
    const p0 = o.put(rec(0));
    t.is(o.nextId, 1, 'the id is taken before any await');
    const e0 = await p0;
    const e1 = await o.put(rec(1, 5));
    t.deepEqual([e0.id, e1.id], [0, 1]);
    t.is(o.size, 2);
    t.is(o.bytes, 't/0'.length + 10 + 't/1'.length + 5);
    t.true(o.has(1));
    t.is(typeof o.epoch, 'string');
  });

  test(`${kind}: concurrent puts get ids in call order and all are held`, async (t) => {
    const o = await make(t);
    const entries = await Promise.all(Array.from({ length: 100 }, (_, i) => o.put(rec(i))));
    t.deepEqual(
      entries.map((e) => e.id),
      Array.from({ length: 100 }, (_, i) => i),
    );
    t.deepEqual(ids(o), entries.map((e) => e.id));
    t.is(entries[42]!.topic, 't/42');
  });

  test(`${kind}: peek is oldest first, honours limit and afterId, and does not remove`, async (t) => {
    const o = await make(t);
    for (let i = 0; i < 5; i++) await o.put(rec(i));
    t.deepEqual(o.peek(2).map((e) => e.id), [0, 1]);
    t.deepEqual(o.peek(10, 2).map((e) => e.id), [3, 4]);
    t.deepEqual(o.peek(10, 4), []);
    await o.ack(3);
    t.deepEqual(o.peek(10, 1).map((e) => e.id), [2, 4], 'acked entries are skipped');
    t.is(o.size, 4);
    t.deepEqual(o.peek(1)[0]!.payload, rec(0).payload);
  });

  test(`${kind}: ack deletes once; acking an unknown id resolves false`, async (t) => {
    const o = await make(t);
    const e = await o.put(rec(0));
    t.true(await o.ack(e.id));
    t.false(await o.ack(e.id));
    t.false(await o.ack(999));
    t.is(o.size, 0);
    t.is(o.bytes, 0);
    t.is((await o.put(rec(1))).id, 1, 'ids are never reused');
  });

  test(`${kind}: maxEntries drops the oldest and counts it`, async (t) => {
    const o = await make(t, { maxEntries: 3 });
    for (let i = 0; i < 5; i++) await o.put(rec(i));
    t.deepEqual(ids(o), [2, 3, 4]);
    t.is(o.dropped, 2);
    t.is(o.size, 3);
  });

  test(`${kind}: maxBytes drops the oldest; an entry larger than the bound is refused and changes nothing`, async (t) => {
    const o = await make(t, { maxBytes: 40 }); // each rec is 13 bytes
    for (let i = 0; i < 4; i++) await o.put(rec(i));
    t.deepEqual(ids(o), [1, 2, 3]);
    t.is(o.dropped, 1);
    const err = await t.throwsAsync(o.put(rec(9, 100)), { instanceOf: OutboxError });
    t.is(err?.code, 'OUTBOX_ENTRY_TOO_LARGE');
    t.regex(err?.message ?? '', /maxBytes 40/);
    t.deepEqual(ids(o), [1, 2, 3]);
    t.is(o.dropped, 1);
  });

  test(`${kind}: put and ack after close reject with OUTBOX_CLOSED`, async (t) => {
    const o = await make(t);
    await o.put(rec(0));
    await o.close();
    t.is((await t.throwsAsync(o.put(rec(1)), { instanceOf: OutboxError }))?.code, 'OUTBOX_CLOSED');
    t.is((await t.throwsAsync(o.ack(0), { instanceOf: OutboxError }))?.code, 'OUTBOX_CLOSED');
  });

  test(`${kind}: bad limits are refused with OUTBOX_BAD_OPTIONS naming the field`, async (t) => {
    const err = await t.throwsAsync(make(t, { maxEntries: 0 }), { instanceOf: OutboxError });
    t.is(err?.code, 'OUTBOX_BAD_OPTIONS');
    t.regex(err?.message ?? '', /maxEntries/);
  });
}

// ------------------------------------------------------------------ file outbox only

function recorder() {
  const warnings: string[] = [];
  return { warnings, log: { warn: (_o: object, m: string) => warnings.push(m), info: () => {} } };
}

test('file: reopening keeps entries, nextId, epoch and the dropped count', async (t) => {
  const dir = await tempDir(t);
  const a = await openFileOutbox({ dir, maxEntries: 3 });
  for (let i = 0; i < 5; i++) await a.put(rec(i));
  await a.ack(3);
  const epoch = a.epoch;
  await a.close();
  const b = await openFileOutbox({ dir, maxEntries: 3 });
  t.teardown(() => b.close());
  t.deepEqual(ids(b), [2, 4]);
  t.is(b.nextId, 5);
  t.is(b.epoch, epoch);
  t.is(b.dropped, 2);
  t.deepEqual(b.peek(1)[0], { id: 2, topic: 't/2', payload: rec(2).payload });
});

test('file: ids continue after every entry was acked and the log compacted', async (t) => {
  const dir = await tempDir(t);
  const a = await openFileOutbox({ dir, compactMinBytes: 256 });
  for (let i = 0; i < 50; i++) await a.ack((await a.put(rec(i, 50))).id);
  await a.close();
  t.true((await stat(join(dir, 'outbox.log'))).size < 256, 'acked entries were compacted away');
  const b = await openFileOutbox({ dir });
  t.teardown(() => b.close());
  t.is(b.size, 0);
  t.is((await b.put(rec(0))).id, 50);
});

test('file: compaction runs when acked records dominate, keeps live entries, and reopens cleanly', async (t) => {
  const dir = await tempDir(t);
  const a = await openFileOutbox({ dir, compactMinBytes: 4096 });
  for (let i = 0; i < 200; i++) {
    await a.put(rec(i, 100));
    if (i % 10 !== 0) await a.ack(i);
  }
  const size = (await stat(join(dir, 'outbox.log'))).size;
  t.true(size < 8192, `log stayed small (${size} bytes) while 200 entries of ~200 bytes passed through`);
  t.is(a.size, 20);
  await a.close();
  const b = await openFileOutbox({ dir });
  t.teardown(() => b.close());
  t.deepEqual(ids(b), Array.from({ length: 20 }, (_, i) => i * 10));
});

test('file: a torn last line is skipped with a warning, not a crash', async (t) => {
  const dir = await tempDir(t);
  const a = await openFileOutbox({ dir });
  for (let i = 0; i < 3; i++) await a.put(rec(i));
  await a.close();
  await appendFile(join(dir, 'outbox.log'), '{"t":"p","id":3,"topic":"t/3","b6'); // cut mid-record
  const r = recorder();
  const b = await openFileOutbox({ dir, log: r.log });
  t.deepEqual(ids(b), [0, 1, 2]);
  t.true(r.warnings.some((w) => /torn last line/.test(w)));
  t.is((await b.put(rec(3))).id, 3, 'the torn id is reused: it was never durable, so never sent');
  await b.close();
  const again = recorder();
  const c = await openFileOutbox({ dir, log: again.log });
  t.teardown(() => c.close());
  t.deepEqual(ids(c), [0, 1, 2, 3]);
  t.deepEqual(again.warnings, [], 'the log was repaired');
});

test('file: an unreadable line in the middle is skipped with a warning naming the line', async (t) => {
  const dir = await tempDir(t);
  const a = await openFileOutbox({ dir });
  await a.put(rec(0));
  await a.close();
  await appendFile(join(dir, 'outbox.log'), '\u0000\u0000garbage\n{"t":"p","id":1,"topic":"t/1","b64":"QQ=="}\n');
  const r = recorder();
  const b = await openFileOutbox({ dir, log: r.log });
  t.teardown(() => b.close());
  t.deepEqual(ids(b), [0, 1]);
  t.true(r.warnings.some((w) => /unreadable line/.test(w)));
});

test('file: a directory that cannot be written is a clear OUTBOX_NOT_WRITABLE error', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'a-file');
  await writeFile(file, 'x');
  const err = await t.throwsAsync(openFileOutbox({ dir: join(file, 'outbox') }), { instanceOf: OutboxError });
  t.is(err?.code, 'OUTBOX_NOT_WRITABLE');
  t.regex(err?.message ?? '', /a-file\/outbox.*not writable \(ENOTDIR\)/);
  if (process.getuid?.() !== 0) {
    const ro = join(dir, 'ro');
    await writeFile(ro, '');
    await rm(ro);
    const { mkdir, chmod } = await import('node:fs/promises');
    await mkdir(ro, { mode: 0o555 });
    await chmod(ro, 0o555);
    const e2 = await t.throwsAsync(openFileOutbox({ dir: ro }), { instanceOf: OutboxError });
    t.is(e2?.code, 'OUTBOX_NOT_WRITABLE');
  }
});

test('file: a second open of the same directory is OUTBOX_LOCKED until the first closes', async (t) => {
  const dir = await tempDir(t);
  const a = await openFileOutbox({ dir });
  await a.put(rec(1));
  const err = await t.throwsAsync(openFileOutbox({ dir }), { instanceOf: OutboxError });
  t.is(err?.code, 'OUTBOX_LOCKED');
  await a.close();
  const b = await openFileOutbox({ dir }); // the lock went with the first close
  t.deepEqual([...b.entries()].map((e) => e.topic), ['t/1'], 'the second open holds what the first stored');
  await b.close();
});

test('file: entries put by a process killed with SIGKILL mid-stream are all there on reopen', async (t) => {
  const dir = await tempDir(t);
  const script = join(dir, 'child.mts'); // .mts: /tmp has no package.json saying type=module
  const outboxUrl = pathToFileURL(join(import.meta.dirname, '../runtime/mqtt/outbox-file.ts')).href;
  await writeFile(
    script,
    `import { openFileOutbox } from ${JSON.stringify(outboxUrl)};
     const o = await openFileOutbox({ dir: ${JSON.stringify(join(dir, 'ob'))} });
     for (let i = 0; ; i++) {
       const e = await o.put({ topic: 'edgeprompt/v1/d/c/result', payload: Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(300) })) });
       process.stdout.write(e.id + '\\n');
     }`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: join(import.meta.dirname, '..'),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let confirmed = -1;
  let buf = '';
  child.stdout.setEncoding('utf8');
  await new Promise<void>((resolve) => {
    child.on('exit', () => resolve()); // died on its own: the assertions below say how
    child.stdout.on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) confirmed = Number(l);
      if (confirmed >= 200 && child.exitCode === null && !child.killed) {
        child.kill('SIGKILL'); // mid-stream: puts are in flight
        resolve();
      }
    });
  });
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  t.is(child.signalCode, 'SIGKILL');
  const r = recorder();
  const o = await openFileOutbox({ dir: join(dir, 'ob'), log: r.log });
  t.teardown(() => o.close());
  const held = ids(o);
  t.true(held.length > confirmed, `every confirmed put (0..${confirmed}) survived; held ${held.length}`);
  t.deepEqual(held, Array.from({ length: held.length }, (_, i) => i), 'no holes');
  t.is(o.nextId, held.length);
  const last = JSON.parse(o.peek(1, held.length - 2)[0]!.payload.toString());
  t.is(last.i, held.length - 1);
  const text = await readFile(join(dir, 'ob', 'outbox.log'), 'utf8');
  t.true(text.endsWith('\n'));
});

test('openOutbox builds either kind from device config, with defaults, and names bad fields', async (t) => {
  const dir = await tempDir(t);
  const f = await openOutbox({ kind: 'file', dir });
  t.is((await f.put(rec(0))).id, 0);
  await f.close();
  const m = await openOutbox({ kind: 'memory', maxEntries: 1 });
  await m.put(rec(0));
  await m.put(rec(1));
  t.is(m.dropped, 1);
  const err = await t.throwsAsync(openOutbox({ kind: 'file', dir, maxBytes: -1 }), { instanceOf: MqttOptionsError });
  t.regex(err?.message ?? '', /outbox options: maxBytes: /);
});
