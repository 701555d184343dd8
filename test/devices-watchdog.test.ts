// The camera watchdog around synthetic sources that stall, crash, end or never start.

import test from 'ava';
import { backoffDelay } from '../devices/backoff.ts';
import type { Frame } from '../devices/cameras/frame.ts';
import { SyntheticSource, type SyntheticOptions } from '../devices/cameras/synthetic.ts';
import { takeFrames } from '../devices/cameras/take.ts';
import { Watchdog, type WatchdogOptions } from '../devices/cameras/watchdog.ts';
import { recordStates, waitForState } from './helpers/media.ts';

const format = { width: 4, height: 4, channels: 3 as const };

function guarded(o: Partial<SyntheticOptions>, w: WatchdogOptions): Watchdog {
  return new Watchdog(new SyntheticSource({ camera: 'cam', format, fps: 100, ...o }), w);
}

test('backoff is exponential, capped and exact without jitter; jitter is repeatable with an injected random', (t) => {
  const o = { initialMs: 100, factor: 2, maxMs: 1000 };
  t.deepEqual([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, o)), [100, 200, 400, 800, 1000, 1000]);
  t.is(backoffDelay(2, { ...o, jitter: 0.5, random: () => 1 }), 200);
  t.is(backoffDelay(2, { ...o, jitter: 0.5, random: () => 0 }), 400);
});

test('a source that stops sending is declared stalled after stallMs, restarted, and frame ids keep rising', async (t) => {
  const wd = guarded({ stallAfter: 5 }, { stallMs: 150, backoff: { initialMs: 50 } });
  const events = recordStates(wd);
  const frames: Frame[] = [];
  wd.on('frame', (f) => frames.push(f));
  await wd.start();
  const stalled = await waitForState(wd, events, (e) => e.state === 'stalled');
  await waitForState(wd, events, (e) => e.state === 'running' && e.prev === 'starting' && e.ts > stalled.ts);
  await takeFrames(wd, 2, 2000);
  await wd.stop();
  t.is(stalled.reason, 'stall');
  const lastBeforeStall = frames.filter((f) => f.captureTs <= stalled.ts).at(-1)!;
  const silence = stalled.ts - lastBeforeStall.captureTs;
  // The check ticks every stallMs/4; the upper bound leaves room for a loaded CI machine.
  t.true(silence >= 150 && silence < 150 + 500, `stall declared after ${silence} ms of silence`);
  t.deepEqual(events.slice(0, 5).map((e) => `${e.state}:${e.reason}`), ['starting:start', 'running:first_frame', 'stalled:stall', 'restarting:stall', 'starting:restart']);
  t.is(events.find((e) => e.state === 'restarting')!.retryInMs, 50);
  const ids = frames.map((f) => f.frameId);
  t.deepEqual(ids, [...ids].sort((a, b) => a - b));
  t.true(ids.length >= 7 && new Set(ids).size === ids.length);
  t.like(wd.stats(), { stalls: 1, restarts: 1, crashes: 0, state: 'stopped' });
});

test('a crashing source restarts with exponential backoff, and the crash is in the camera_state event', async (t) => {
  const wd = guarded({ crashAfter: 2 }, { backoff: { initialMs: 20, factor: 2, maxMs: 1000 }, healthyAfterMs: 60_000 });
  const events = recordStates(wd);
  await wd.start();
  await waitForState(wd, events, (e) => e.state === 'restarting' && e.attempt === 4);
  await wd.stop();
  const restarts = events.filter((e) => e.state === 'restarting');
  t.deepEqual(restarts.map((e) => e.retryInMs), [20, 40, 80, 160]);
  t.true(restarts.every((e) => e.reason === 'crashed' && e.error?.code === 'E_SOURCE'));
  t.is(wd.stats().crashes, 4);
});

test('a run that stays healthy resets the backoff', async (t) => {
  const wd = guarded({ crashAfter: 3 }, { backoff: { initialMs: 20 }, healthyAfterMs: 0 });
  const events = recordStates(wd);
  await wd.start();
  await waitForState(wd, events, (e) => e.state === 'restarting' && wd.stats().restarts >= 3);
  await wd.stop();
  t.deepEqual(events.filter((e) => e.state === 'restarting').slice(0, 3).map((e) => e.retryInMs), [20, 20, 20]);
});

test('a spent crash-loop budget stops the camera for good when configured so, without throwing', async (t) => {
  const wd = guarded({ crashAfter: 1 }, { backoff: { initialMs: 10 }, budget: { maxRestarts: 2, windowMs: 10_000 }, onBudgetExhausted: 'stop' });
  const events = recordStates(wd);
  const ended = new Promise((r) => wd.once('end', r));
  await wd.start();
  await ended;
  t.is(wd.state, 'stopped');
  t.is(events.at(-1)!.reason, 'budget_exhausted');
  t.is(events.filter((e) => e.state === 'restarting').length, 2);
});

test('by default a spent budget means a long cooldown, not giving up', async (t) => {
  const wd = guarded({ crashAfter: 1 }, { backoff: { initialMs: 10 }, budget: { maxRestarts: 2, windowMs: 10_000 }, cooldownMs: 5000 });
  const events = recordStates(wd);
  await wd.start();
  const cool = await waitForState(wd, events, (e) => e.reason.endsWith('budget_exhausted'));
  await wd.stop();
  t.is(cool.state, 'restarting');
  t.is(cool.retryInMs, 5000);
});

test('a camera that is away (runs that never deliver a frame) is tried again every backoff step, never exhausting the budget', async (t) => {
  const wd = guarded({ crashAfter: 0 }, { backoff: { initialMs: 10, maxMs: 20 }, budget: { maxRestarts: 2, windowMs: 10_000 }, onBudgetExhausted: 'stop' });
  const events = recordStates(wd);
  await wd.start();
  await waitForState(wd, events, () => wd.stats().restarts >= 12);
  await wd.stop();
  t.false(events.some((e) => e.reason.includes('budget_exhausted')));
  t.deepEqual(events.filter((e) => e.state === 'restarting').slice(0, 4).map((e) => e.retryInMs), [10, 20, 20, 20], 'capped at maxMs');
  t.is(wd.stats().crashLoops, 0);
});

test('the default pacing: 250 ms, 500 ms, then every second', async (t) => {
  const wd = guarded({ crashAfter: 0 }, {});
  const events = recordStates(wd);
  await wd.start();
  await waitForState(wd, events, () => wd.stats().restarts >= 4);
  await wd.stop();
  t.deepEqual(events.filter((e) => e.state === 'restarting').slice(0, 4).map((e) => e.retryInMs), [250, 500, 1000, 1000]);
});

test('a healthy run that ends (a flap) is not a crash loop: the pacing starts again at its first step and the budget is untouched', async (t) => {
  const wd = guarded({ crashAfter: 5 }, { backoff: { initialMs: 10, factor: 2, maxMs: 1000 }, healthyAfterMs: 0, budget: { maxRestarts: 1, windowMs: 10_000 }, onBudgetExhausted: 'stop' });
  const events = recordStates(wd);
  await wd.start();
  await waitForState(wd, events, () => wd.stats().restarts >= 4);
  await wd.stop();
  t.deepEqual(events.filter((e) => e.state === 'restarting').slice(0, 4).map((e) => e.retryInMs), [10, 10, 10, 10]);
  t.is(wd.stats().crashLoops, 0);
});

test('no first frame within firstFrameMs is a stall too', async (t) => {
  const wd = guarded({ stallAfter: 0 }, { firstFrameMs: 100, backoff: { initialMs: 1000 } });
  const events = recordStates(wd);
  await wd.start();
  const e = await waitForState(wd, events, (x) => x.state === 'stalled');
  await wd.stop();
  t.is(e.reason, 'no_first_frame');
});

test('a finite source that ends is stopped, not restarted; stop() during a backoff wait cancels the restart', async (t) => {
  const finite = guarded({ count: 3 }, {});
  const events = recordStates(finite);
  const end = new Promise((r) => finite.once('end', (i) => r(i.reason)));
  await finite.start();
  t.is(await end, 'eof');
  t.deepEqual(events.map((e) => e.state), ['starting', 'running', 'stopped']);

  const crashing = guarded({ crashAfter: 0 }, { backoff: { initialMs: 200 } });
  const ev2 = recordStates(crashing);
  await crashing.start();
  await waitForState(crashing, ev2, (e) => e.state === 'restarting');
  await crashing.stop();
  await new Promise((r) => setTimeout(r, 300));
  t.is(ev2.filter((e) => e.state === 'starting').length, 1, 'no start after stop()');
  t.is(crashing.state, 'stopped');
});
