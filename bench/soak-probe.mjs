// Loaded into the device runtime by bench/soak.ts (`node --import bench/soak-probe.mjs <bundle> run`):
// every SOAK_PROBE_MS it writes one JSON line to fd 3 with the process's memory, its live libuv
// resources by type (handles and requests: sockets, pipes, timers...) and the process warnings seen
// so far (a listener leak shows up as MaxListenersExceededWarning). Nothing else in the runtime changes.
import { writeSync } from 'node:fs';

const every = Number(process.env.SOAK_PROBE_MS ?? 5000);
const warnings = [];
process.on('warning', (w) => warnings.push(`${w.name}: ${w.message}`.slice(0, 200)));
const timer = setInterval(() => {
  const m = process.memoryUsage();
  const resources = {};
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
  try {
    writeSync(3, JSON.stringify({ t: Date.now(), rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, resources, warnings: warnings.length, lastWarning: warnings.at(-1) ?? null }) + '\n');
  } catch {
    clearInterval(timer); // the bench went away
  }
}, every);
timer.unref();
