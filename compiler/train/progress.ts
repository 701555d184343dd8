/**
 * Training progress: a live bar on a terminal (epoch, step, loss, images/s, ETA), one line per
 * epoch otherwise (CI logs, pipes), nothing when silenced.
 */
import cliProgress from 'cli-progress';
import type { EpochRecord } from './epoch-record.ts';
import { pctText } from '../../runtime/pipeline/inspection.ts';

export interface Progress {
  startEpoch(epoch: number, epochs: number, steps: number, startAt: number): void;
  step(i: number, s: { loss: number; imagesPerSec: number; lr: number }): void;
  endEpoch(r: EpochRecord): void;
  log(msg: string): void;
  stop(): void;
}

/** Inspection tasks: what a quality engineer reads, at the manifest threshold. */
const inspectionText = (r: EpochRecord) => {
  const i = r.inspection;
  return i ? `, escape ${pctText(i.escapeRate)}, false reject ${pctText(i.falseRejectRate)}, AUROC ${i.auroc === null ? '–' : i.auroc.toFixed(3)}` : '';
};

const epochLine = (r: EpochRecord) =>
  `epoch ${r.epoch}: train loss ${r.trainLoss.toFixed(4)}, val loss ${r.valLoss.toFixed(4)}, val top-1 ${(100 * r.valTop1).toFixed(2)} %${inspectionText(r)}, ${r.imagesPerSec.toFixed(1)} img/s, ${r.seconds.toFixed(1)} s` +
  (r.details ? ` | ${Object.entries(r.details).map(([k, v]) => `${k} ${Math.abs(v) <= 1 ? v.toFixed(4) : v.toFixed(2)}`).join(', ')}` : '');

export function makeProgress(mode: 'auto' | 'bar' | 'lines' | 'none' = 'auto', out: NodeJS.WriteStream = process.stderr): Progress {
  const kind = mode === 'auto' ? (out.isTTY ? 'bar' : 'lines') : mode;
  if (kind === 'none') return { startEpoch() {}, step() {}, endEpoch() {}, log() {}, stop() {} };
  if (kind === 'lines') {
    return {
      startEpoch() {},
      step() {},
      endEpoch: (r) => void out.write(`${epochLine(r)}\n`),
      log: (m) => void out.write(`${m}\n`),
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    { format: 'epoch {ep} |{bar}| {value}/{total} steps | loss {loss} | {ips} img/s | lr {lr} | ETA {eta_formatted}', stream: out, hideCursor: true, clearOnComplete: true, etaBuffer: 20 },
    cliProgress.Presets.shades_classic,
  );
  let running = false;
  return {
    startEpoch(epoch, epochs, steps, startAt) {
      bar.start(steps, startAt, { ep: `${epoch + 1}/${epochs}`, loss: '-', ips: '-', lr: '-' });
      running = true;
    },
    step(i, s) {
      bar.update(i, { loss: s.loss.toFixed(4), ips: s.imagesPerSec.toFixed(1), lr: s.lr.toExponential(2) });
    },
    endEpoch(r) {
      if (running) bar.stop();
      running = false;
      out.write(`${epochLine(r)}\n`);
    },
    log(m) {
      if (running) bar.stop();
      running = false;
      out.write(`${m}\n`);
    },
    stop() {
      if (running) bar.stop();
      running = false;
    },
  };
}
