// Faults at scale through mosquitto, CI-sized (bench/faults.ts runs 10,000 results per scenario):
// numbered results from a reporter with a file outbox, through a TCP proxy, to a persistent
// subscriber. Each scenario asserts lost / duplicated / out of order by seq
// (test/helpers/faults.ts has the rig and the accounting).

import test from 'ava';
import { runFaultScenario, type FaultScenario, type FaultStats } from './helpers/faults.ts';

const show = (s: FaultStats) =>
  `${s.results} results: delivered ${s.delivered}, duplicates ${s.duplicates}, out of order ${s.outOfOrder}, missing ${s.missing} ` +
  `(dropped by the bound ${s.dropped}, refused ${s.refused}, lost by the broker ${s.lostByBroker}, by the runtime ${s.lostByRuntime}); ` +
  `reconnects ${s.reconnects}; ${JSON.stringify(s.notes)}; ${(s.ms / 1000).toFixed(1)} s`;

const cases: [FaultScenario, number, string][] = [
  ['broker-kill', 1000, 'mosquitto SIGKILLed 3 times while results flow: nothing lost by the runtime, nothing out of order'],
  ['drain-cut', 2000, 'the link cut twice more while the outbox drains what piled up offline: nothing lost, nothing out of order'],
  ['offline-full', 1000, 'the outbox fills while offline: the oldest are dropped and counted, the count is published, the log stays within its bound'],
  ['too-large', 500, 'a result over message_size_limit is refused once and counted (MQTT v5 PUBACK 0x95), without a reconnect loop'],
  ['too-large-packet', 500, 'a result over max_packet_size is never sent (CONNACK limit) and is counted; no reconnect at all'],
];

// One at a time: a broker down for a second frees its port, and a broker another test starts
// meanwhile could take it (freePort), so the restarted one would come back elsewhere.
for (const [scenario, results, title] of cases) {
  test.serial(`${scenario}: ${title}`, async (t) => {
    t.timeout(180_000);
    const s = await runFaultScenario(scenario, { results, bigEvery: 50 });
    t.log(show(s));
    t.deepEqual(s.violations, []);
    t.is(s.lostByRuntime, 0);
    t.is(s.outOfOrder, 0);
    t.is(s.delivered + s.missing, results);
  });
}
