/**
 * The key end-to-end case on the whole device runtime (not just the reporter): a camera
 * streams frames through `edgeprompt run` (a real child process) to mosquitto; the broker is
 * stopped for seconds while results keep coming, the runtime is killed with SIGKILL mid-stream,
 * both are restarted, and a persistent subscriber must hold every sequence number at least once,
 * none missing.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { subscribeResults } from '../runtime/mqtt/client.ts';
import { startMosquitto, until } from './helpers/brokers.ts';
import { makeVideo, solidGraph, tempDir } from './helpers/media.ts';
import { repoPath } from './helpers/fixtures.ts';

test('stop the broker, kill -9 the runtime mid-stream, restart both: every seq arrives', async (t) => {
  t.timeout(90_000);
  const { dir, cleanup } = await tempDir('ep-e2e-');
  t.teardown(cleanup);
  const video = await makeVideo(dir, { graph: solidGraph([200, 180, 40], 64, 64, 20), seconds: 2, codec: 'h264', name: 'cam.mp4' });
  const broker = await startMosquitto({ dir });
  t.teardown(() => broker.stop());
  const device = {
    device: 'e2e-1',
    artifact: repoPath('configs/demo/bracket-inspection.epk'),
    trustedKeys: [repoPath('configs/demo/demo.pub')],
    profile: 'x86-cpu',
    cameras: [{ id: 'cam', kind: 'ffmpeg', input: { kind: 'file', path: video, realtime: true, loop: true } }],
    mqtt: { url: broker.url, reconnectPeriodMs: 200 },
    outbox: { kind: 'file', dir: join(dir, 'outbox') },
    health: { intervalMs: 1000 },
  };
  const cfgFile = join(dir, 'device.yaml');
  await writeFile(cfgFile, JSON.stringify(device));
  const start = (): ChildProcess => spawn(process.execPath, ['--import', 'tsx', repoPath('runtime/cli.ts'), 'run', '-c', cfgFile], { stdio: 'ignore', env: { ...process.env, EDGEPROMPT_LOG_LEVEL: 'error' } });

  const seqs = new Set<number>();
  let received = 0;
  const epochs = new Set<string>();
  const sub = subscribeResults({ url: broker.url, device: 'e2e-1', clientId: 'e2e-line-pc', reconnectPeriodMs: 200 }, (m) => {
    seqs.add(m.result.seq);
    epochs.add(m.result.seqEpoch);
    received++;
  });
  t.teardown(() => sub.close());
  await sub.ready;

  let rt = start();
  t.teardown(() => void rt.kill('SIGKILL'));
  await until(() => seqs.size >= 15, 'results from the first runtime', 30_000);
  await broker.stop(); // results now pile up in the runtime's outbox
  await new Promise((r) => setTimeout(r, 2500));
  rt.kill('SIGKILL'); // mid-stream, with undelivered results on disk
  await new Promise((r) => rt.once('exit', r));
  const beforeRestart = Math.max(...seqs);
  await broker.restart();
  rt = start();
  // The restarted runtime first delivers the killed one's outbox, then new results.
  await until(() => seqs.size > 0 && Math.max(...seqs) >= beforeRestart + 60, 'the backlog and new results', 45_000);
  rt.kill('SIGTERM');
  await new Promise((r) => rt.once('exit', r));
  await new Promise((r) => setTimeout(r, 500));
  const max = Math.max(...seqs);
  const missing = Array.from({ length: max + 1 }, (_, i) => i).filter((i) => !seqs.has(i));
  t.log(`seq 0..${max}: ${seqs.size} distinct, ${received - seqs.size} duplicates (QoS 1 redelivery), last seq seen before the outage ${beforeRestart}`);
  t.is(epochs.size, 1, 'one sequence across the restart (the outbox keeps it)');
  t.deepEqual(missing, [], 'no sequence number missing');
  t.true(max > beforeRestart + 40, 'results produced while the broker was down were delivered');
});
