// Who goes when: the targets (sorted by id, so a restarted controller plans the same stages) split
// into the canary and the percentage stages of the policy. Pure.

import { DeployError } from '../../runtime/schema/deploy.ts';
import type { RolloutPolicy } from './policy.ts';

export interface Stage {
  /** 'canary', or the stage's cumulative percentage ('40%'). */
  name: string;
  devices: string[];
}

export function planStages(targets: readonly string[], policy: Pick<RolloutPolicy, 'canary' | 'stages'>): Stage[] {
  const all = [...new Set(targets)].sort();
  if (all.length === 0) throw new DeployError('NO_DEVICES', 'no target devices');
  let canary: string[];
  if (Array.isArray(policy.canary)) {
    const missing = policy.canary.filter((d) => !all.includes(d));
    if (missing.length > 0) throw new DeployError('POLICY_INVALID', `canary names ${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not among the targets (${all.join(', ')})`);
    canary = [...policy.canary];
  } else canary = all.slice(0, Math.min(policy.canary, all.length));
  const rest = all.filter((d) => !canary.includes(d));
  const stages: Stage[] = canary.length > 0 ? [{ name: 'canary', devices: canary }] : [];
  let done = canary.length;
  for (const pct of policy.stages) {
    const upto = Math.min(all.length, Math.ceil((pct * all.length) / 100));
    const take = rest.slice(done - canary.length, Math.max(done, upto) - canary.length);
    if (take.length === 0) continue;
    stages.push({ name: `${pct}%`, devices: take });
    done += take.length;
  }
  return stages;
}
