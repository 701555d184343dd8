// One crash-injection run (test/helpers/outbox-crash.ts bundles this file with esbuild and starts
// it as `node child.mjs '<json plan>'`): open the file outbox, do what a device does to it (puts
// in overlapping batches, acks as PUBACKs come, the bound dropping the oldest, compactions) and
// die by SIGKILL where the plan says. Everything the parent must hold the outbox to is written to
// stdout with writeSync before it can matter, so the parent has it even when the kill comes next:
//   R <nextId> <epoch>   opened
//   P <id>               put() resolved: accepted, the outbox promised it is on disk
//   A <id>               about to ack: the broker has it; it may vanish (or come back as a resend)
//   X <point>            the hook fired the kill (or the partial write) at this boundary

import { appendFileSync, writeSync } from 'node:fs';
import { mulberry32 } from '../../devices/rng.ts';
import { openFileOutbox } from '../../runtime/mqtt/outbox-file.ts';
import { crashPayload, crashTopic, type ChildPlan } from './outbox-crash-plan.ts';

const say = (line: string) => writeSync(1, line + '\n');

async function main(plan: ChildPlan) {
  const rng = mulberry32(plan.seed);
  let reached = 0;
  const o = await openFileOutbox({
    dir: plan.dir,
    maxEntries: plan.maxEntries,
    compactMinBytes: plan.compactMinBytes,
    commitDelayMs: plan.commitDelayMs,
    commitMaxRecords: 64,
    lazyFlushMs: 20,
    log: { warn: () => {}, info: () => {} },
    crashHook: (point, io) => {
      if (plan.mode === 'none' || point !== plan.point || ++reached !== plan.occurrence) return;
      say(`X ${point}`);
      if (plan.mode === 'torn' && io.bytes) {
        // What a write cut short leaves: a prefix of its bytes (never a whole record's worth more).
        const n = Math.floor(io.bytes.length * (plan.tornFraction ?? 0.5));
        appendFileSync(io.path, io.bytes.subarray(0, n));
      }
      process.kill(process.pid, 'SIGKILL');
    },
  });
  say(`R ${o.nextId} ${o.epoch}`);
  // What this process knows is held: what it reopened with, and what it put since (acked on "PUBACK").
  const held: number[] = [...o.entries()].map((e) => e.id);
  for (;;) {
    const batch = 1 + Math.floor(rng() * 24);
    const puts: Promise<unknown>[] = [];
    for (let i = 0; i < batch; i++) {
      const id = o.nextId;
      puts.push(
        o.put({ topic: crashTopic(id), payload: crashPayload(id) }).then((e) => {
          say(`P ${e.id}`);
          held.push(e.id);
        }),
      );
    }
    // Sometimes wait for the batch, sometimes let the next one overlap it (the pipeline does not wait).
    if (rng() < 0.5) await Promise.all(puts);
    // PUBACKs: usually the oldest few in order, sometimes one out of order.
    const acks = Math.floor(rng() * (batch + 4));
    for (let i = 0; i < acks && held.length > 0; i++) {
      const k = rng() < 0.85 ? 0 : Math.floor(rng() * held.length);
      const [id] = held.splice(k, 1);
      say(`A ${id}`);
      await o.ack(id!);
    }
    await new Promise((r) => setTimeout(r, Math.floor(rng() * 3)));
  }
}

await main(JSON.parse(process.argv[2]!) as ChildPlan);
