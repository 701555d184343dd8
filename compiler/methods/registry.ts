/** Every prompt method by its config name. Tests iterate this table. */
import type { PromptMethod } from './method.ts';
import { linear, full } from './linear.ts';
import { vptShallow, vptDeep } from './vpt.ts';
import { vpInner, vpOuter } from './vp.ts';
import { sa2vp } from './sa2vp.ts';
import { sptShallow, sptDeep } from './spt.ts';
import { daVpt, daVptBias } from './da-vpt.ts';
import { zeroShot } from './zero-shot.ts';
import { coop } from './coop.ts';
import { clipVpInner, clipVpOuter } from './clip-vp.ts';
import { clipVptShallow } from './clip-vpt.ts';
import { dapt } from './dapt.ts';
import { CompilerError } from '../ops/errors.ts';
import { hintOrKnown } from '../../devices/config-issues.ts';

export const METHODS: Record<string, PromptMethod<never>> = {
  linear: linear as PromptMethod<never>,
  full: full as PromptMethod<never>,
  'vpt-shallow': vptShallow as PromptMethod<never>,
  'vpt-deep': vptDeep as PromptMethod<never>,
  'vp-inner': vpInner as PromptMethod<never>,
  'vp-outer': vpOuter as PromptMethod<never>,
  sa2vp: sa2vp as PromptMethod<never>,
  'spt-shallow': sptShallow as PromptMethod<never>,
  'spt-deep': sptDeep as PromptMethod<never>,
  'da-vpt': daVpt as PromptMethod<never>,
  'da-vpt-bias': daVptBias as PromptMethod<never>,
  // CLIP methods (a text tower defines the classes): backbone.arch clip_*.
  'zero-shot': zeroShot as PromptMethod<never>,
  coop: coop as PromptMethod<never>,
  'clip-vp-inner': clipVpInner as PromptMethod<never>,
  'clip-vp-outer': clipVpOuter as PromptMethod<never>,
  'clip-vpt-shallow': clipVptShallow as PromptMethod<never>,
  dapt: dapt as PromptMethod<never>,
};

export function methodByName(name: string): PromptMethod<Record<string, unknown>> {
  const m = METHODS[name];
  if (!m) throw new CompilerError('CONFIG_INVALID', `unknown method "${name}"${hintOrKnown(name, Object.keys(METHODS))}`);
  return m as unknown as PromptMethod<Record<string, unknown>>;
}
