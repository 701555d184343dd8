/**
 * The precision gate: a precision ships only if its validation top-1 stays within `maxDropPt`
 * percentage points of the fp32 reference (and, when configured, its logits within a bound of
 * the reference logits). Refusals carry a message that says what to do, never a silent drop.
 */
import { CompilerError } from '../../ops/errors.ts';

export type Precision = 'fp32' | 'fp16' | 'int8';
export const PRECISIONS: readonly Precision[] = ['fp32', 'fp16', 'int8'];

/** What the compiler measures per precision (and writes into the manifest). */
export interface PrecisionMetrics {
  /** Validation top-1, a fraction in [0, 1]. */
  top1: number;
  /** max |logit − fp32 reference logit| over the validation set (the tfjs training graph). */
  maxLogitDiff: number;
  images: number;
  /** Share of images whose argmax equals the reference's: a diagnostic, not gated (labels are the contract). */
  top1Agreement?: number;
}

export interface GateOptions {
  /** Largest allowed top-1 drop against the reference, in percentage points (default 0.5). */
  maxDropPt?: number;
  /** Optional bound on maxLogitDiff per precision (none by default: top-1 is the contract). */
  maxLogitDiff?: Partial<Record<Precision, number>>;
}

export type RefusalReason = 'ACCURACY_DROP' | 'LOGIT_DIFF' | 'NOT_FINITE';
export interface Refusal {
  precision: Precision;
  reason: RefusalReason;
  message: string;
}
export interface GateResult {
  /** Requested precisions that pass, in request order. */
  ship: Precision[];
  refused: Refusal[];
  /** Top-1 drop per requested precision, in points (negative: better than the reference). */
  dropPt: Partial<Record<Precision, number>>;
  /** Things to print beside the table, e.g. a validation set too small for the gate to resolve. */
  warnings: string[];
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
const pt = (x: number) => `${x < 0 ? '−' : '+'}${Math.abs(x).toFixed(1)} pt`;

/**
 * `reference`: the fp32 reference's metrics (top-1 of the tfjs graph on the same images).
 * `measured`: the metrics of each requested precision; a requested precision without metrics is an error.
 */
export function gatePrecisions(reference: PrecisionMetrics, measured: Partial<Record<Precision, PrecisionMetrics>>, requested: readonly Precision[], opts: GateOptions = {}): GateResult {
  const gate = opts.maxDropPt ?? 0.5;
  if (!(gate >= 0)) throw new CompilerError('INTERNAL', `precision.maxDropPt must be ≥ 0, got ${gate}`);
  const dropPt: GateResult['dropPt'] = {};
  const verdicts: { precision: Precision; refusal?: Omit<Refusal, 'message'> & { why: string } }[] = [];
  for (const p of requested) {
    const m = measured[p];
    if (!m) throw new CompilerError('INTERNAL', `precision gate: no metrics for requested precision ${p}; measure it first`);
    if (m.images !== reference.images) throw new CompilerError('INTERNAL', `precision gate: ${p} was measured on ${m.images} images, the reference on ${reference.images}; compare on the same validation set`);
    const drop = 100 * (reference.top1 - m.top1);
    dropPt[p] = drop;
    const bound = opts.maxLogitDiff?.[p];
    if (!Number.isFinite(m.maxLogitDiff) || !Number.isFinite(m.top1)) {
      verdicts.push({ precision: p, refusal: { precision: p, reason: 'NOT_FINITE', why: `non-finite logits (max |Δlogit| ${m.maxLogitDiff}); fp16 overflow or a broken quantization` } });
    } else if (drop > gate + 1e-9) {
      verdicts.push({ precision: p, refusal: { precision: p, reason: 'ACCURACY_DROP', why: `validation top-1 ${pct(m.top1)} vs fp32 ${pct(reference.top1)} (${pt(-drop)} > gate ${gate} pt)` } });
    } else if (bound !== undefined && m.maxLogitDiff > bound) {
      verdicts.push({ precision: p, refusal: { precision: p, reason: 'LOGIT_DIFF', why: `max |Δlogit| ${m.maxLogitDiff.toPrecision(3)} vs fp32 exceeds the bound ${bound}` } });
    } else {
      verdicts.push({ precision: p });
    }
  }
  const ship = verdicts.filter((v) => !v.refusal).map((v) => v.precision);
  const refused = verdicts.flatMap((v) => {
    if (!v.refusal) return [];
    const knob = v.refusal.reason === 'LOGIT_DIFF' ? `precision.maxLogitDiff.${v.precision}` : '--max-drop';
    const alternatives = [ship.length > 0 ? `use --precision ${ship.join(',')}` : '', v.refusal.reason === 'NOT_FINITE' ? '' : `raise ${knob}`].filter(Boolean);
    const fix = alternatives.length > 0 ? alternatives.join(' or ') : 'no requested precision passes; check the fp32 export against the training graph';
    return [{ precision: v.precision, reason: v.refusal.reason, message: `${v.precision} refused: ${v.refusal.why}; ${fix}` }];
  });
  // One image is 100/n points: with fewer than 100/gate images a single flip decides.
  const warnings: string[] = [];
  const onePt = 100 / reference.images;
  if (gate > 0 && onePt > gate) warnings.push(`the validation set has ${reference.images} images, so one image is ${onePt.toFixed(2)} pt, coarser than the ${gate} pt gate: a single changed prediction refuses a precision; validate on ≥ ${Math.ceil(100 / gate)} images`);
  return { ship, refused, dropPt, warnings };
}

/** Top-1 against labels and the largest logit difference against reference logits, both [images, classes] row-major. */
export function precisionMetrics(logits: Float32Array, reference: Float32Array, labels: ArrayLike<number>, classes: number): PrecisionMetrics {
  const images = labels.length;
  if (logits.length !== images * classes || reference.length !== logits.length) {
    throw new CompilerError('INTERNAL', `precisionMetrics: ${logits.length} logits and ${reference.length} reference logits for ${images} images × ${classes} classes`);
  }
  let correct = 0;
  let agree = 0;
  let maxDiff = 0;
  for (let r = 0; r < images; r++) {
    let best = 0;
    let refBest = 0;
    for (let c = 0; c < classes; c++) {
      const k = r * classes + c;
      const d = Math.abs(logits[k]! - reference[k]!);
      maxDiff = Number.isNaN(d) ? Infinity : Math.max(maxDiff, d);
      if (logits[k]! > logits[r * classes + best]!) best = c;
      if (reference[k]! > reference[r * classes + refBest]!) refBest = c;
    }
    if (best === labels[r]) correct++;
    if (best === refBest) agree++;
  }
  return { top1: correct / images, maxLogitDiff: maxDiff, images, top1Agreement: agree / images };
}
