// Faults at scale through mosquitto (issue: reliability hardening, "faults at scale"): numbered
// results from a reporter with a file outbox, through a TCP proxy that can cut the link, to
// mosquitto (persistence on), to a persistent subscriber that records every seq it receives.
// Each scenario injects one kind of fault and says what was lost, duplicated and out of order by seq:
//   broker-kill       mosquitto SIGKILLed 3 times while results flow (down ~1 s each)
//   drain-cut         results pile up while the link is down; the link is cut twice more while the outbox drains
//   offline-full      more results while the link is down than the outbox bound holds (oldest dropped, counted, published)
//   too-large         some results over mosquitto's message_size_limit (MQTT v5 PUBACK 0x95)
//   too-large-packet  some results over mosquitto's max_packet_size (advertised in CONNACK)
// Used by test/mqtt-faults.test.ts (CI-sized) and bench/faults.ts (10,000 results each).

import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { openFileOutbox } from '../../runtime/mqtt/outbox-file.ts';
import { startReporter, type Reporter } from '../../runtime/mqtt/reporter.ts';
import { topics } from '../../runtime/mqtt/topics.ts';
import type { ResultInput } from '../../runtime/schema/payloads.ts';
import { recordingLog, sampleHealth, sampleResult, sampleState, startMosquitto, startProxy, until } from './brokers.ts';

export const FAULT_SCENARIOS = ['broker-kill', 'drain-cut', 'offline-full', 'too-large', 'too-large-packet'] as const;
export type FaultScenario = (typeof FAULT_SCENARIOS)[number];

export interface FaultOptions {
  results: number;
  /** Results per second while producing online. Default 1000. */
  rate?: number;
  /** offline-full: the outbox bound (maxEntries). Default results / 4. */
  maxEntries?: number;
  /** too-large*: every n-th result is too big. Default 50. */
  bigEvery?: number;
  progress?: (msg: string) => void;
}

export interface FaultStats {
  scenario: FaultScenario;
  results: number;
  /** Distinct seqs the subscriber received. */
  delivered: number;
  /** Deliveries of a seq already received (QoS 1 resends; the subscriber drops them by seq). */
  duplicates: number;
  /** Distinct seqs received after a higher one. */
  outOfOrder: number;
  /** Seqs never received, and why. */
  missing: number;
  /** ...dropped by the outbox bound (offline-full: the policy), refused by the broker (too-large*). */
  dropped: number;
  refused: number;
  /** ...PUBACKed by mosquitto before a SIGKILL (it saves every second; the runtime forgets a result at its PUBACK): lost by the broker. */
  lostByBroker: number;
  /** ...none of the above: lost by the runtime. Must be 0. */
  lostByRuntime: number;
  reconnects: number;
  /** Fault-specific facts (kills, cuts while draining, largest log size, events seen, health dropped...). */
  notes: Record<string, number | string>;
  violations: string[];
  ms: number;
}

const DEVICE = 'faults-1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Over 4 KiB as JSON: 100 top-k entries with 40-character labels. */
function bigResult(n: number): ResultInput {
  const r = sampleResult('cam1', n);
  return { ...r, topK: Array.from({ length: 100 }, (_, i) => ({ label: `defect-class-${String(i).padStart(3, '0')}-${'x'.repeat(24)}`, score: 0.001 })) };
}

/** A persistent subscriber (fixed clientId, clean:false, v5 session expiry) that records every seq. */
async function subscriber(url: string) {
  const seqs: number[] = [];
  const events: { code?: string; message?: string; type: string }[] = [];
  const healthDropped: number[] = [];
  let lastMessage = performance.now();
  const c = mqtt.connect(url, { clientId: 'faults-backend', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 }, reconnectPeriod: 100 });
  c.on('error', () => {});
  // Quiet means connected and nothing new for a while: a subscriber still reconnecting after the
  // last broker kill is not quiet, and one just back is given the time to receive its queue (bug:
  // on a loaded machine the test read the seqs while the subscriber was still away after the third
  // kill and blamed results PUBACKed after it as "never delivered").
  c.on('connect', () => (lastMessage = performance.now()));
  const subscribed = new Promise<void>((resolve) =>
    c.on('connect', (ck) => {
      if (ck.sessionPresent) return resolve();
      c.subscribe([`edgeprompt/v1/${DEVICE}/+/result`, topics.event(DEVICE), topics.health(DEVICE)], { qos: 1 }, () => resolve());
    }),
  );
  c.on('message', (topic, payload) => {
    lastMessage = performance.now();
    const m = JSON.parse(payload.toString()) as { seq?: number; type?: string; code?: string; message?: string; mqtt?: { dropped: number } };
    if (topic.endsWith('/result')) seqs.push(m.seq!);
    else if (topic === topics.event(DEVICE)) events.push(m as { type: string });
    else if (m.mqtt) healthDropped.push(m.mqtt.dropped);
  });
  await subscribed;
  return { seqs, events, healthDropped, quietFor: () => (c.connected ? performance.now() - lastMessage : 0), close: () => c.endAsync(true) };
}

/**
 * Publishes `count` results at `rate`/s (not waiting for each to be durable, as the pipeline does
 * not). Time spent in `each` (a fault being injected) shifts the schedule instead of being caught up.
 */
async function produce(r: Reporter, count: number, rate: number, big: (i: number) => boolean, each?: (i: number) => Promise<void> | void) {
  let t0 = performance.now();
  const pending = new Set<Promise<unknown>>();
  for (let i = 0; i < count; i++) {
    const wait = t0 + (i / rate) * 1000 - performance.now();
    if (wait > 2) await sleep(wait);
    const p = r.publishResult(big(i) ? bigResult(i) : sampleResult('cam1', i));
    pending.add(p);
    void p.finally(() => pending.delete(p));
    if (pending.size >= 512) await Promise.race(pending);
    if (each) {
      const a = performance.now();
      await each(i);
      t0 += performance.now() - a;
    }
  }
  await Promise.all(pending);
}

export async function runFaultScenario(scenario: FaultScenario, o: FaultOptions): Promise<FaultStats> {
  const t0 = performance.now();
  const N = o.results;
  const rate = o.rate ?? 1000;
  const say = o.progress ?? (() => {});
  const dir = await mkdtemp(join(tmpdir(), `ep-faults-${scenario}-`));
  const config = scenario === 'too-large' ? ['message_size_limit 4096'] : scenario === 'too-large-packet' ? ['max_packet_size 4096'] : [];
  const stats: FaultStats = {
    scenario, results: N, delivered: 0, duplicates: 0, outOfOrder: 0, missing: 0, dropped: 0, refused: 0,
    lostByBroker: 0, lostByRuntime: 0, reconnects: 0, notes: {}, violations: [], ms: 0,
  };
  const cleanup: (() => Promise<unknown>)[] = [];
  try {
    const m = await startMosquitto({ dir, config });
    cleanup.push(() => m.stop());
    const proxy = await startProxy(m.port);
    cleanup.push(() => proxy.close());
    const maxEntries = scenario === 'offline-full' ? (o.maxEntries ?? Math.floor(N / 4)) : 100_000;
    const outbox = await openFileOutbox({ dir: join(dir, 'outbox'), maxEntries });
    cleanup.push(() => outbox.close());
    const { log } = recordingLog();
    const r = startReporter(
      { url: proxy.url, device: DEVICE, protocolVersion: 5, reconnectPeriodMs: 100, keepaliveS: 5, healthIntervalMs: scenario === 'offline-full' ? 300 : 0 },
      { outbox, state: sampleState(), log, health: () => sampleHealth() },
    );
    cleanup.unshift(() => r.close());
    const acked = new Map<number, number>();
    // The first PUBACK: a result sent again after a reconnect is acked again later (bug: the later time hid which kill lost it).
    // Kept as the reporter's connection count at the time, not a clock: a PUBACK that the killed
    // broker sent is read only after the kill on a loaded machine (bug: at load 20, twelve results
    // acked just before a kill were read after it and blamed as "no broker kill after it"), but it
    // is always read on the connection that kill ended.
    r.on('acked', (seq) => void (acked.has(seq) || acked.set(seq, r.counters().reconnects)));
    let disconnects = 0;
    r.on('disconnect', () => disconnects++);

    const sub = await subscriber(m.url);
    cleanup.unshift(() => sub.close());
    await until(() => r.connected, 'the reporter connected', 10_000);
    await sleep(1200); // mosquitto saves every second: the subscription must be on disk before a kill
    const bigEvery = o.bigEvery ?? 50;
    const big = (i: number) => (scenario === 'too-large' || scenario === 'too-large-packet') && i % bigEvery === bigEvery - 1;
    const expected = new Set<number>(Array.from({ length: N }, (_, i) => i));
    const kills: number[] = [];

    if (scenario === 'broker-kill') {
      const at = new Set([Math.floor(N / 4), Math.floor(N / 2), Math.floor((3 * N) / 4)]);
      await produce(r, N, rate, big, async (i) => {
        if (!at.has(i)) return;
        kills.push(r.counters().reconnects);
        await m.kill();
        say(`mosquitto SIGKILLed at result ${i}`);
        await sleep(1000);
        await m.restart();
        await until(() => r.connected, 'the reporter back after the broker restart', 30_000);
      });
      stats.notes.kills = kills.length;
      if (disconnects < 3) stats.violations.push(`the reporter saw ${disconnects} of the 3 broker kills`);
    } else if (scenario === 'drain-cut') {
      proxy.down();
      await until(() => !r.connected, 'the reporter saw the link go down');
      await produce(r, N, 50_000, big);
      say(`${outbox.size} results waiting; link up`);
      proxy.up();
      let cutsWhileDraining = 0;
      for (const frac of [2 / 3, 1 / 3]) {
        await until(() => outbox.size <= N * frac, `outbox drained to ${frac}`, 120_000);
        if (outbox.size > 0) cutsWhileDraining++;
        stats.notes[`outbox at cut ${cutsWhileDraining}`] = outbox.size;
        proxy.down();
        await sleep(300);
        proxy.up();
      }
      stats.notes.cutsWhileDraining = cutsWhileDraining;
      if (cutsWhileDraining < 2) stats.violations.push(`only ${cutsWhileDraining} of 2 cuts came while the outbox was draining`);
    } else if (scenario === 'offline-full') {
      const online = Math.min(100, Math.floor(N / 10));
      await produce(r, online, rate, big);
      await r.drained();
      proxy.down();
      await until(() => !r.connected, 'the reporter saw the link go down');
      const logFile = join(dir, 'outbox', 'outbox.log');
      let maxLog = 0;
      const sampler = setInterval(() => void stat(logFile).then((s) => (maxLog = Math.max(maxLog, s.size)), () => {}), 20);
      const offline = N - online;
      await produce(r, offline, 50_000, big);
      clearInterval(sampler);
      maxLog = Math.max(maxLog, (await stat(logFile)).size);
      const droppedNow = outbox.dropped;
      stats.notes.heldWhileOffline = outbox.size;
      stats.notes.maxLogBytes = maxLog;
      if (outbox.size !== maxEntries) stats.violations.push(`outbox holds ${outbox.size}, not its bound ${maxEntries}`);
      if (droppedNow !== offline - maxEntries) stats.violations.push(`dropped ${droppedNow}, expected ${offline - maxEntries}`);
      // Live put lines are ~1.4× the entry bytes (base64); compaction keeps the log under twice the live lines (or 1 MiB).
      const lineBytes = Math.ceil((Buffer.byteLength(topics.result(DEVICE, 'cam1')) + 600) * 1.4) + 64;
      const bound = Math.max(1 << 20, 2 * maxEntries * lineBytes) + 256 * 1024;
      stats.notes.logBoundBytes = bound;
      if (maxLog > bound) stats.violations.push(`outbox.log reached ${maxLog} bytes, over ${bound}`);
      for (let s = online; s < online + droppedNow; s++) expected.delete(s); // the policy: oldest dropped
      stats.dropped = droppedNow;
      proxy.up();
    } else {
      await produce(r, N, rate, big);
    }

    await until(() => r.connected, 'the reporter reconnected', 30_000);
    // Bug (the test file's worker lived on ~2 min after its last test, near ava's 3-minute
    // inactivity timeout): a plain 120 s sleep as the bound kept the process alive; unref'd, it only bounds.
    await Promise.race([r.drained(), new Promise((res) => setTimeout(res, 120_000).unref())]);
    if (outbox.size > 0) stats.violations.push(`${outbox.size} results still in the outbox after 120 s`);
    // The subscriber has everything once nothing new came for 2 s (or it has every expected seq).
    const fresh = () => new Set(sub.seqs);
    await until(() => sub.quietFor() > 2000 || [...expected].every((s) => fresh().has(s)), 'the subscriber quiet', 120_000).catch(() => {});
    // Health goes out every 300 ms while connected; one sent after the reconnect carries the drops.
    if (scenario === 'offline-full') await until(() => sub.healthDropped.at(-1) === outbox.dropped, 'a health message with the drops', 10_000).catch(() => {});

    // Lost / duplicated / out of order, by seq.
    const seen = new Set<number>();
    let maxSeen = -1;
    for (const s of sub.seqs) {
      if (seen.has(s)) {
        stats.duplicates++;
        continue;
      }
      seen.add(s);
      if (s < maxSeen) stats.outOfOrder++;
      maxSeen = Math.max(maxSeen, s);
    }
    stats.delivered = seen.size;
    const c = r.counters();
    stats.refused = c.rejected;
    stats.reconnects = c.reconnects;
    for (let s = 0; s < N; s++) {
      if (seen.has(s)) {
        if (!expected.has(s)) stats.violations.push(`seq ${s} arrived though the bound dropped it`);
        continue;
      }
      stats.missing++;
      if (!expected.has(s)) continue; // dropped by the bound, as the policy says
      if (big(s)) continue; // refused by the broker: counted below
      // The runtime forgets a result only at its PUBACK: from then on it is the broker's. A result
      // PUBACKed before a SIGKILL and missing was lost by the broker (it saves every second; on a
      // loaded machine a save can come later, so no fixed window: bug, the faults test counted
      // results acked 2-3 s before a kill at load 25 as lost by the runtime). The oldest such PUBACK
      // is noted, to show how far back the broker lost.
      const t = acked.get(s);
      const killAfter = t === undefined ? undefined : kills.find((k) => t <= k);
      if (t === undefined) stats.lostByRuntime++;
      else if (killAfter === undefined) stats.violations.push(`seq ${s} PUBACKed, never delivered, and no broker kill after it`);
      else {
        stats.lostByBroker++;
        stats.notes['broker lost, oldest PUBACK before its kill, connections back'] = Math.max(Number(stats.notes['broker lost, oldest PUBACK before its kill, connections back'] ?? 0), killAfter - t);
      }
    }
    const bigCount = Array.from({ length: N }, (_, i) => i).filter(big).length;
    if (bigCount > 0) {
      stats.notes.bigResults = bigCount;
      if (stats.refused !== bigCount) stats.violations.push(`refused ${stats.refused}, but ${bigCount} results were too big`);
      for (let s = 0; s < N; s++) if (big(s) && seen.has(s)) stats.violations.push(`too-big seq ${s} arrived`);
      if (!sub.events.some((e) => e.code === 'RESULT_REFUSED')) stats.violations.push('no RESULT_REFUSED event');
      if (scenario === 'too-large-packet' && stats.reconnects > 0) stats.violations.push(`${stats.reconnects} reconnects: the CONNACK limit should keep oversize results from being sent`);
      if (scenario === 'too-large' && stats.reconnects > bigCount) stats.violations.push(`${stats.reconnects} reconnects for ${bigCount} refusals: a reconnect loop`);
    }
    if (scenario === 'offline-full') {
      const ev = sub.events.find((e) => e.code === 'OUTBOX_DROPPED');
      stats.notes.dropEvent = ev ? 'OUTBOX_DROPPED received' : 'none';
      stats.notes.healthDropped = sub.healthDropped.at(-1) ?? -1;
      if (!ev) stats.violations.push('no OUTBOX_DROPPED event');
      if (sub.healthDropped.at(-1) !== stats.dropped) stats.violations.push(`health says dropped ${sub.healthDropped.at(-1)}, the outbox dropped ${stats.dropped}`);
    }
    if (stats.lostByRuntime > 0) stats.violations.push(`${stats.lostByRuntime} results lost by the runtime`);
    if (stats.outOfOrder > 0) stats.violations.push(`${stats.outOfOrder} results out of order`);
    stats.notes.disconnects = disconnects;
    stats.notes.eventsSeen = [...new Set(sub.events.map((e) => e.code ?? e.type))].join(', ') || 'none';
  } finally {
    for (const f of cleanup) await f().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
  stats.ms = performance.now() - t0;
  return stats;
}
