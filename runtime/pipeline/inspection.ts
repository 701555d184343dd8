// Inspection semantics: a model whose manifest declares `okLabels` inspects parts, and every part
// either passes (OK) or fails (NG). This module holds the pass rule and the figures a quality
// engineer reads from labelled parts, as pure functions shared by the device (the rule), the
// compiler and the benchmarks (validation figures) and the demo (figures from MQTT results).
//
// The rule (docs/artifact.md): okScore = Σ p(label) over okLabels, the model's probability that
// the part is good. A part passes when its top label is an OK label AND okScore ≥ minConfidence.
// With one OK label and minConfidence ≥ 0.5 that is simply okScore ≥ minConfidence; below 0.5 the
// top-label condition keeps a part the model thinks most likely defective from ever passing.
//
// The figures:
// - escape rate: defective parts passed as OK ÷ defective parts (what reaches the customer);
// - false-reject rate: good parts failed ÷ good parts (scrap and re-inspection cost);
// - AUROC defect-vs-ok: the probability that a good part scores a higher okScore than a defective
//   one (ties count half): how well the score ranks, whatever the threshold;
// - per class: recall (top label right) and the share failed;
// - the operating point: the strictest minConfidence whose false-reject rate stays ≤ maxFrr
//   (default 10 %), and the escape rate there. The MQTT command `set-threshold` applies it on a device (docs/mqtt.md).

/** One inspected part: its true class, the model's top class, and its okScore. */
export interface InspectedPart {
  truth: number;
  predicted: number;
  okScore: number;
}

/** The pass rule in class indices. */
export interface InspectionRule {
  okClasses: readonly number[];
  minConfidence: number;
}

export interface OperatingPoint {
  /** The minConfidence of this point. */
  minConfidence: number;
  escapeRate: number | null;
  falseRejectRate: number | null;
  /** False when even minConfidence 0 rejects more good parts than allowed (their top label is a defect). */
  reachable: boolean;
}

export interface ClassInspection {
  count: number;
  /** Top label right ÷ count. */
  recall: number | null;
  /** Failed ÷ count (for an OK class: its false rejects; for a defect class: its catch rate). */
  failRate: number | null;
}

export interface InspectionMetrics {
  parts: number;
  good: number;
  defective: number;
  /** Defective parts passed. */
  escapes: number;
  /** Good parts failed. */
  falseRejects: number;
  /** null when there is no defective (escape) or no good (false reject) part to measure on. */
  escapeRate: number | null;
  falseRejectRate: number | null;
  /** null unless both good and defective parts are present. */
  auroc: number | null;
  perClass: ClassInspection[];
  /** The strictest threshold that holds false rejects ≤ maxFrr, and the escape rate there. */
  atMaxFrr: OperatingPoint & { maxFrr: number };
}

/** Σ probs over the OK classes: the model's probability that the part is good. */
export function okScoreOf(probs: ArrayLike<number>, okClasses: readonly number[]): number {
  let s = 0;
  for (const c of okClasses) s += probs[c] ?? 0;
  return Math.min(1, Math.max(0, s));
}

export function passes(p: InspectedPart, rule: InspectionRule): boolean {
  return rule.okClasses.includes(p.predicted) && p.okScore >= rule.minConfidence;
}

const ratio = (a: number, b: number): number | null => (b > 0 ? a / b : null);

/** Mann–Whitney AUROC: P(okScore(good) > okScore(defective)) + ½ P(tie), by average ranks. */
export function aurocGoodOverDefective(good: readonly number[], defective: readonly number[]): number | null {
  if (good.length === 0 || defective.length === 0) return null;
  const all = [...good.map((s) => ({ s, g: true })), ...defective.map((s) => ({ s, g: false }))].sort((a, b) => a.s - b.s);
  let rankSumGood = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j]!.s === all[i]!.s) j++;
    const avgRank = (i + 1 + j) / 2; // ranks i+1 … j share their mean
    for (let k = i; k < j; k++) if (all[k]!.g) rankSumGood += avgRank;
    i = j;
  }
  const G = good.length;
  return (rankSumGood - (G * (G + 1)) / 2) / (G * defective.length);
}

/** Escape and false-reject rates of `parts` under `rule`. */
function rates(parts: readonly InspectedPart[], rule: InspectionRule): { escapes: number; falseRejects: number; good: number; defective: number } {
  let escapes = 0;
  let falseRejects = 0;
  let good = 0;
  for (const p of parts) {
    const isGood = rule.okClasses.includes(p.truth);
    const pass = passes(p, rule);
    if (isGood) {
      good++;
      if (!pass) falseRejects++;
    } else if (pass) escapes++;
  }
  return { escapes, falseRejects, good, defective: parts.length - good };
}

/**
 * The strictest minConfidence that keeps false rejects ≤ maxFrr: good parts whose top label is
 * OK, sorted by okScore, must keep at least ⌈(1 − maxFrr)·good⌉ of them passing.
 */
export function operatingPoint(parts: readonly InspectedPart[], okClasses: readonly number[], maxFrr: number): OperatingPoint {
  const isOk = (c: number) => okClasses.includes(c);
  const goods = parts.filter((p) => isOk(p.truth));
  const allowed = Math.floor(maxFrr * goods.length + 1e-9);
  const need = goods.length - allowed;
  const candidates = goods.filter((p) => isOk(p.predicted)).map((p) => p.okScore).sort((a, b) => b - a);
  const reachable = goods.length > 0 && candidates.length >= need;
  // need 0 (maxFrr ≥ 1): every good part may fail, so the strictest threshold is 1.
  const minConfidence = !reachable ? 0 : need === 0 ? 1 : candidates[need - 1]!;
  const r = rates(parts, { okClasses, minConfidence });
  return { minConfidence, escapeRate: ratio(r.escapes, r.defective), falseRejectRate: ratio(r.falseRejects, r.good), reachable };
}

export function inspectionMetrics(parts: readonly InspectedPart[], rule: InspectionRule, numClasses: number, maxFrr = 0.1): InspectionMetrics {
  const r = rates(parts, rule);
  const isOk = (c: number) => rule.okClasses.includes(c);
  const perClass: ClassInspection[] = Array.from({ length: numClasses }, (_, c) => {
    const mine = parts.filter((p) => p.truth === c);
    return {
      count: mine.length,
      recall: ratio(mine.filter((p) => p.predicted === c).length, mine.length),
      failRate: ratio(mine.filter((p) => !passes(p, rule)).length, mine.length),
    };
  });
  return {
    parts: parts.length,
    good: r.good,
    defective: r.defective,
    escapes: r.escapes,
    falseRejects: r.falseRejects,
    escapeRate: ratio(r.escapes, r.defective),
    falseRejectRate: ratio(r.falseRejects, r.good),
    auroc: aurocGoodOverDefective(
      parts.filter((p) => isOk(p.truth)).map((p) => p.okScore),
      parts.filter((p) => !isOk(p.truth)).map((p) => p.okScore),
    ),
    perClass,
    atMaxFrr: { ...operatingPoint(parts, rule.okClasses, maxFrr), maxFrr },
  };
}

/** "12.5 %" or "–" when there was nothing to measure. */
export const pctText = (x: number | null, digits = 1): string => (x === null ? '–' : `${(100 * x).toFixed(digits)} %`);
