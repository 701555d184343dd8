// What only the spool promises (the Outbox contract suite runs it too, in mqtt-outbox.test.ts):
// entries, epoch and the dropped count survive a reopen, ids continue past the reserved block so
// none is reused, a put cut short by a crash (a .tmp- file) is discarded, an unreadable entry file
// is skipped with a warning, payloads stay on disk until sent, one process per directory.

import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutboxError } from '../runtime/mqtt/errors.ts';
import { openSpool } from '../runtime/keep/spool.ts';

async function tempDir(t: ExecutionContext) {
  const dir = await mkdtemp(join(tmpdir(), 'ep-spool-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
const rec = (i: number, size = 1000) => ({ topic: `edgeprompt/v1/d/c/frame`, payload: Buffer.alloc(size, i % 256) });
function warnings() {
  const w: string[] = [];
  return { w, log: { warn: (_o: object, m: string) => void w.push(m), info: () => {} } };
}

test('reopen keeps entries, epoch and dropped; ids continue past the reserved block', async (t) => {
  const dir = await tempDir(t);
  const a = await openSpool({ dir, maxEntries: 3 });
  for (let i = 0; i < 5; i++) await a.put(rec(i));
  const epoch = a.epoch;
  t.is(a.dropped, 2);
  await a.ack(3);
  await a.close();
  const b = await openSpool({ dir, maxEntries: 3 });
  t.teardown(() => b.close());
  t.is(b.epoch, epoch);
  t.is(b.dropped, 2);
  t.deepEqual([...b.entries()].map((e) => e.id), [2, 4]);
  t.deepEqual(b.peek(1)[0]!.payload, rec(2).payload);
  const next = await b.put(rec(9));
  t.true(next.id >= 1024, `id ${next.id} is past the block reserved before the reopen`);
  t.deepEqual((await readdir(join(dir, 'e'))).sort(), ['0000000000000002.msg', '0000000000000004.msg', `${String(next.id).padStart(16, '0')}.msg`]);
});

test('every entry acked, reopened: ids are not reused', async (t) => {
  const dir = await tempDir(t);
  const a = await openSpool({ dir });
  const e = await a.put(rec(0));
  await a.ack(e.id);
  await a.close();
  const b = await openSpool({ dir });
  t.teardown(() => b.close());
  t.is(b.size, 0);
  t.true((await b.put(rec(1))).id > e.id);
});

test('a put cut short (.tmp- file) is discarded; an unreadable entry is skipped with a warning', async (t) => {
  const dir = await tempDir(t);
  const a = await openSpool({ dir });
  await a.put(rec(0));
  await a.close();
  await writeFile(join(dir, 'e', '.tmp-0000000000000001.msg'), Buffer.alloc(10));
  await writeFile(join(dir, 'e', '0000000000000002.msg'), Buffer.from([0xff])); // no topic length
  const { w, log } = warnings();
  const b = await openSpool({ dir, log });
  t.teardown(() => b.close());
  t.deepEqual([...b.entries()].map((e) => e.id), [0]);
  t.true(w.some((m) => /unreadable entry/.test(m)), w.join('; '));
  t.false((await readdir(join(dir, 'e'))).some((n) => n.startsWith('.tmp-')));
});

test('payloads stay on disk: the process holds sizes, and reads a payload when it is sent', async (t) => {
  const dir = await tempDir(t);
  const s = await openSpool({ dir });
  t.teardown(() => s.close());
  await s.put(rec(7, 200_000));
  t.is(s.bytes, Buffer.byteLength(rec(7).topic) + 200_000);
  const [e] = s.peek(1);
  t.is(e!.payload.length, 200_000);
  t.is(e!.payload[0], 7);
});

test('a second open of the directory is OUTBOX_LOCKED; an unwritable one OUTBOX_NOT_WRITABLE naming keep.dir', async (t) => {
  const dir = await tempDir(t);
  const a = await openSpool({ dir });
  t.teardown(() => a.close());
  t.is((await t.throwsAsync(openSpool({ dir }), { instanceOf: OutboxError }))?.code, 'OUTBOX_LOCKED');
  await writeFile(join(dir, 'file'), 'x');
  const err = await t.throwsAsync(openSpool({ dir: join(dir, 'file', 'sub') }), { instanceOf: OutboxError });
  t.is(err?.code, 'OUTBOX_NOT_WRITABLE');
  t.regex(err?.message ?? '', /keep\.dir/);
});
