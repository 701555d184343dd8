// `edgeprompt deploy status`: the retained deploy state of every device as a table (release before
// and after, state, transfer, shadow figures, reason), and the one-line description the rollout
// prints as a device moves along.

import { randomUUID } from 'node:crypto';
import mqtt from 'mqtt';
import type { z } from 'zod';
import { ConnectionOptions, endClient, parseOptions, toMqttOptions } from '../../runtime/mqtt/connection.ts';
import type { DeploymentStatus } from '../../runtime/schema/deploy.ts';
import { FleetView, type DeviceView } from './fleet-view.ts';

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);

function transferText(s: DeploymentStatus): string {
  const t = s.transfer;
  if (!t) return '-';
  return t.via === 'mqtt' ? `${t.blocks}/${t.totalBlocks} blocks${t.resumed ? ` (${t.resumed} resumed)` : ''}${t.badBlocks ? `, ${t.badBlocks} bad` : ''}` : `${(t.bytes / 1e6).toFixed(2)}/${(t.totalBytes / 1e6).toFixed(2)} MB`;
}

function shadowText(s: DeploymentStatus): string {
  const f = s.shadow;
  if (!f) return '-';
  return `${f.frames} frames, agree ${pct(f.decisionAgreement)} (top-1 ${pct(f.top1Agreement)}), NG ${pct(f.ngRate.current)} → ${pct(f.ngRate.candidate)}`;
}

/** One line for a device's deployment, as the rollout prints it. */
export function describe(s: DeploymentStatus): string {
  const rel = `release ${s.releaseBefore ?? '-'} → ${s.artifact.release}`;
  switch (s.state) {
    case 'downloading':
      return `downloading ${transferText(s)}`;
    case 'verifying':
      return 'verifying';
    case 'shadow':
      return `shadow: ${shadowText(s)}`;
    case 'promoted':
      return `promoted (${rel}); watching${s.watch ? ` ${s.watch.frames} frames, ${s.watch.errors} errors` : ''}`;
    case 'committed':
      return `committed (${rel})${s.shadow ? `; shadow ${shadowText(s)}` : ''}`;
    default:
      return `${s.state}: ${s.reason ? `${s.reason.code}: ${s.reason.message}` : ''}${s.shadow ? ` [shadow ${shadowText(s)}]` : ''}`;
  }
}

export interface StatusRow {
  device: string;
  online: string;
  rollout: string;
  artifact: string;
  release: string;
  state: string;
  transfer: string;
  shadow: string;
  reason: string;
}

export function statusRows(views: Iterable<DeviceView>): StatusRow[] {
  const rows: StatusRow[] = [];
  for (const v of [...views].sort((a, b) => (a.device < b.device ? -1 : 1))) {
    const s = v.deploy?.deployment ?? null;
    const m = v.deploy?.installed.model;
    rows.push({
      device: v.device,
      online: v.online === null ? '?' : v.online ? 'yes' : 'no',
      rollout: s?.rollout ?? '-',
      artifact: s ? `${s.artifact.kind} ${s.artifact.name}` : m ? `model ${m.name}` : '-',
      release: s ? `${s.releaseBefore ?? '-'} → ${s.artifact.release}` : m ? String(m.release) : '-',
      state: s?.state ?? (v.deploy ? 'idle' : '-'),
      transfer: s ? transferText(s) : '-',
      shadow: s ? shadowText(s) : '-',
      reason: s?.reason ? `${s.reason.code}: ${s.reason.message}` : '',
    });
  }
  return rows;
}

export function formatTable(rows: readonly StatusRow[]): string {
  const cols: (keyof StatusRow)[] = ['device', 'online', 'rollout', 'artifact', 'release', 'state', 'transfer', 'shadow', 'reason'];
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(width[i]!))).join('  ').trimEnd();
  return [line(cols.map((c) => c.toUpperCase())), ...rows.map((r) => line(cols.map((c) => r[c])))].join('\n');
}

/** Collects retained deploy and status messages for `waitMs` and returns the devices seen. */
export async function fetchStatus(connection: z.input<typeof ConnectionOptions>, waitMs = 1000): Promise<DeviceView[]> {
  const conn = parseOptions(ConnectionOptions, connection, 'deploy status');
  const client = mqtt.connect(conn.url, toMqttOptions(conn, { clientId: conn.clientId ?? `edgeprompt-status-${randomUUID().slice(0, 8)}`, clean: true }));
  client.on('error', () => {});
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    const view = new FleetView(client);
    await view.start();
    await new Promise((r) => setTimeout(r, waitMs));
    return [...view.devices.values()];
  } finally {
    await endClient(client, 2000);
  }
}
