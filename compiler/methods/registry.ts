/** Every prompt method by its config name. Tests iterate this table. */
import type { PromptMethod } from './method.ts';
import { linear, full } from './linear.ts';
import { vptShallow, vptDeep } from './vpt.ts';
import { vpInner, vpOuter } from './vp.ts';
import { sa2vp } from './sa2vp.ts';
import { sptShallow, sptDeep } from './spt.ts';
import { daVpt, daVptBias } from './da-vpt.ts';
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
};

export function methodByName(name: string): PromptMethod<Record<string, unknown>> {
  const m = METHODS[name];
  if (!m) throw new CompilerError('CONFIG_INVALID', `unknown method "${name}"${hintOrKnown(name, Object.keys(METHODS))}`);
  return m as unknown as PromptMethod<Record<string, unknown>>;
}
