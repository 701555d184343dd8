// Cameras that flap, CI-sized (bench/flaps.ts runs 10 s and 60 s outages, 20 flaps and RTSP
// restarts, and records the timings against the ≤ 2 s targets): a running device whose live source
// is killed and comes back. Each outage must produce camera-lost then camera-restored over MQTT,
// and results must flow after the last one. Timings are logged, not asserted (a loaded CI machine
// is no place for them).

import test from 'ava';
import { runFlaps, type FlapStats } from './helpers/flaps.ts';

const show = (s: FlapStats) =>
  s.outages.map((o, i) => `#${i + 1} down ${o.downMs} ms: lost after ${o.detectMs} ms, restored ${o.recoverMs} ms after the source was back`).join('; ') +
  `; ${s.resultsAfter} results in the 2 s after`;

test.serial('an ffmpeg source killed twice: each loss and each recovery is published, and results flow again', async (t) => {
  t.timeout(120_000);
  // healthyAfterMs 1 s so flaps 1.5 s apart are flaps, not a crash loop (the default is 5 s).
  const s = await runFlaps({ source: 'ffmpeg', outages: [1000, 1000], upMs: 1500, watchdog: { healthyAfterMs: 1000 } });
  t.log(show(s));
  t.deepEqual(s.violations, []);
  t.is(s.outages.length, 2);
});

test.serial('an RTSP server (gst-rtsp-server) stopped and started again: loss and recovery published, results flow again', async (t) => {
  t.timeout(120_000);
  const s = await runFlaps({ source: 'rtsp', outages: [1500], upMs: 1000 });
  t.log(show(s));
  t.deepEqual(s.violations, []);
});
