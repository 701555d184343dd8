// Host readings for health: resident memory and CPU temperature. The temperature comes from
// /sys/class/thermal/thermal_zone*/temp (millidegrees C). A Jetson has several zones (cpu-thermal,
// gpu-thermal, soc…); the CPU one is preferred by its `type`, else the hottest zone is reported.
// Where there are none (containers, most VMs) the reading is null, never an error.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const CPU_TYPES = /cpu|x86_pkg_temp|soc_thermal|tcpu|package/i;

export function cpuTemperature(root = '/sys/class/thermal'): number | null {
  let zones: string[];
  try {
    zones = readdirSync(root).filter((z) => z.startsWith('thermal_zone'));
  } catch {
    return null;
  }
  let cpu: number | null = null;
  let hottest: number | null = null;
  for (const z of zones) {
    try {
      const milli = Number(readFileSync(join(root, z, 'temp'), 'utf8').trim());
      if (!Number.isFinite(milli)) continue;
      const c = milli / 1000;
      hottest = hottest === null ? c : Math.max(hottest, c);
      let type = '';
      try {
        type = readFileSync(join(root, z, 'type'), 'utf8').trim();
      } catch {
        /* a zone without a type is still a reading */
      }
      if (CPU_TYPES.test(type)) cpu = cpu === null ? c : Math.max(cpu, c);
    } catch {
      /* unreadable zone (permissions, a sensor that is off): skip it */
    }
  }
  return cpu ?? hottest;
}

export function rssBytes(): number {
  return process.memoryUsage.rss();
}
