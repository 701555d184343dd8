// Crash injection into the file outbox, CI-sized: 100 runs killed with SIGKILL at the outbox's write
// boundaries, mid-write and at random moments (test/helpers/outbox-crash.ts says what each run
// asserts). `npm run bench:crash` runs ≥ 1000 and writes docs/bench/reliability.md.

import test from 'ava';
import { runCrashInjection } from './helpers/outbox-crash.ts';

test('100 SIGKILLs at write boundaries, mid-write and at random: no corrupt record, nothing accepted lost, ids never reused', async (t) => {
  t.timeout(240_000);
  const s = await runCrashInjection({ runs: 100, chainLength: 10, parallel: 2, seed: 20 });
  t.log(`${s.runs} runs in ${(s.ms / 1000).toFixed(1)} s; kills ${JSON.stringify(s.kills)}; accepted ${s.accepted}, acked ${s.acked}, dropped by the bound ${s.droppedByBound}, resent after a lost ack ${s.resentAfterAck}, unconfirmed kept ${s.unconfirmedKept}, torn tails cut ${s.tornTails}`);
  t.deepEqual(s.violations, []);
  t.is(s.runs, 100);
  t.is(s.corrupt, 0);
  t.is(s.lost, 0);
  t.true(s.accepted > 1000, 'the runs did real work before dying');
  t.true(s.tornTails > 0, 'some kills landed mid-write');
  t.true(Object.keys(s.kills).filter((k) => k.startsWith('hook:')).length >= 5, 'most write boundaries were hit');
});
