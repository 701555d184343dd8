// `edgeprompt watch`: live result lines (with gaps and redeliveries flagged) and the health table,
// against aedes with a real reporter publishing.
import test from 'ava';
import mqtt from 'mqtt';
import { createMemoryOutbox } from '../runtime/mqtt/outbox-memory.ts';
import { startReporter } from '../runtime/mqtt/reporter.ts';
import { topics } from '../runtime/mqtt/topics.ts';
import { formatResult, formatTable, startWatch } from '../runtime/watch.ts';
import { recordingLog, sampleHealth, sampleResult, sampleState, startAedes, until } from './helpers/brokers.ts';

test('watch prints each result and a per-device health table; a seq gap is flagged', async (t) => {
  const broker = await startAedes();
  t.teardown(() => broker.stop());
  const out: string[] = [];
  const w = startWatch({ url: broker.url, protocolVersion: 4, tableEveryMs: 50, count: 4, write: (s) => void out.push(s) });
  t.teardown(() => w.close());
  await w.ready;
  const outbox = createMemoryOutbox();
  const reporter = startReporter({ url: broker.url, device: 'press-7', protocolVersion: 4, healthIntervalMs: 50 }, { outbox, state: sampleState(), health: sampleHealth, log: recordingLog().log });
  t.teardown(() => reporter.close());
  for (let i = 0; i < 3; i++) await reporter.publishResult(sampleResult('cam1', i));
  await until(() => w.results === 3, '3 results');
  // A result whose seq skips ahead: the subscriber side must flag the hole.
  const raw = await mqtt.connectAsync(broker.url, { protocolVersion: 4 });
  const r = { ...sampleResult('cam1', 9), v: 1, device: 'press-7', seq: 7, seqEpoch: outbox.epoch, publishTs: Date.now() };
  await raw.publishAsync(topics.result('press-7', 'cam1'), JSON.stringify(r), { qos: 1 });
  await raw.endAsync();
  await w.done;
  await until(() => out.some((l) => l.startsWith('device')), 'a health table');

  const lines = out.filter((l) => l.includes('press-7/cam1'));
  t.is(lines.length, 4);
  t.regex(lines[0]!, /press-7\/cam1\s+#0\s+frame f0\s+trig t0\s+ok-part\s+0\.930\s+OK\s+infer 12\.5ms\s+total 20\.0ms/);
  t.regex(lines[3]!, /#7 .*GAP seq 3\.\.6 missing/);
  t.true(out.some((l) => /press-7 is online \(connected\)/.test(l)));
  const table = out.find((l) => l.startsWith('device'))!;
  t.regex(table, /device\s+status\s+model\s+ep\s+infer p50\/p99 ms/);
  t.regex(table, /press-7\s+online\s+parts-vpt@1\.0\.0\s+cpu\s+12\.0\/20\.0\s+\d+\s+\d+\s+-\s+1\s+cam1\s+running\s+30\.0\s+29\.5\s+3/);
});

test('watch --json writes one JSON object per message', async (t) => {
  const broker = await startAedes();
  t.teardown(() => broker.stop());
  const out: string[] = [];
  const w = startWatch({ url: broker.url, protocolVersion: 4, json: true, count: 1, device: 'd9', write: (s) => void out.push(s) });
  await w.ready;
  const reporter = startReporter({ url: broker.url, device: 'd9', protocolVersion: 4, healthIntervalMs: 0 }, { outbox: createMemoryOutbox(), state: sampleState(), log: recordingLog().log });
  t.teardown(() => reporter.close());
  await reporter.publishResult(sampleResult('camA', 1));
  await w.done;
  await w.close();
  const objs = out.map((l) => JSON.parse(l) as { kind: string; seq?: number; label?: string });
  const res = objs.find((o) => o.kind === 'result')!;
  t.is(res.seq, 0);
  t.is(res.label, 'ok-part');
  t.true(objs.some((o) => o.kind === 'status'));
});

test('formatTable pads columns to their widest cell', (t) => {
  t.is(formatTable(['a', 'bb'], [['xxx', 'y'], ['', 'zz']]), ['a    bb', '---  --', 'xxx  y', '     zz'].join('\n'));
});

test('an inspection model\'s result shows p(ok) beside the decision; a sorting model\'s does not', (t) => {
  const result = { ...sampleResult('cam1', 0), v: 1 as const, device: 'press-7', seq: 0, seqEpoch: 'e1', publishTs: 0 };
  t.regex(formatResult({ result: { ...result, okScore: 0.8125 }, topic: 't', duplicate: false, reset: false }), /0\.930\s+OK\s+p\(ok\) 0\.813\s+infer/);
  t.notRegex(formatResult({ result, topic: 't', duplicate: false, reset: false }), /p\(ok\)/);
});
