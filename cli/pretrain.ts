/**
 * `edgeprompt pretrain -c configs/pretrain/<name>.yaml`: full-parameter training of a ViT on a
 * mixture of sources (compiler/pretrain/), with the trainer's progress, checkpoint per epoch,
 * Ctrl-C + `--resume`, then the F16 timm weights, the per-source heads and a card.
 */
import { relative, resolve, dirname } from 'node:path';
import { loadPretrainConfig } from '../compiler/pretrain/config.ts';
import { preparePretrain } from '../compiler/pretrain/job.ts';
import { publishPretrain } from '../compiler/pretrain/publish.ts';
import { publishClipPretrain } from '../compiler/pretrain/publish-clip.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress } from '../compiler/train/progress.ts';

export interface PretrainFlags {
  config: string;
  set: string[];
  epochs?: number;
  out?: string;
  engine?: string;
  resume?: boolean;
  progress: 'auto' | 'bar' | 'lines' | 'none';
}

/** The command as a user would type it again (repo-relative config path). */
function commandLine(): string {
  const args = process.argv.slice(2).map((a) => (/[\s"'$]/.test(a) ? JSON.stringify(a) : a));
  return `edgeprompt ${args.join(' ')}`;
}

export async function pretrainCommand(f: PretrainFlags): Promise<void> {
  const t0 = performance.now();
  const sets = [...f.set];
  if (f.epochs !== undefined) sets.push(`recipe.epochs=${f.epochs}`);
  // --out takes every output there, the weights and card too: a trial run never overwrites the
  // shipped weights a config's weightsDir names.
  if (f.out !== undefined) sets.push(`output.dir=${resolve(f.out)}`, `output.weightsDir=${resolve(f.out)}`);
  if (f.engine !== undefined) sets.push(`engine=${f.engine}`);
  const config = loadPretrainConfig(f.config, sets);
  const progress = makeProgress(f.progress);
  const abort = new AbortController();
  const onSigint = () => {
    if (abort.signal.aborted) process.exit(130);
    progress.log('Ctrl-C: finishing the current step and saving a checkpoint (press again to quit at once)');
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    const p = await preparePretrain(config, f.config, { resume: f.resume === true, progress, signal: abort.signal });
    const { job } = p;
    const nParams = [...job.initial.values()].reduce((s, t) => s + t.data.length, 0);
    progress.log(
      `${job.name}: ${p.cfg.name} (${p.cfg.imgSize} px, patch ${p.cfg.patchSize}, width ${p.cfg.embedDim}, depth ${p.cfg.depth}) from ${p.start} | ${nParams.toLocaleString('en-US')} trainable values | ` +
        `${p.sources.map((s, i) => `${s.name} ${p.data.perEpoch[i]}/epoch of ${s.train.samples.length}`).join(', ')} | ${job.recipe.epochs} epochs × batch ${job.recipe.batchSize}, adamw lr ${job.recipe.optimizer.lr}`,
    );
    const r = await train(job);
    if (r.interrupted) {
      progress.log(`stopped at epoch ${r.state.epoch + 1}, step ${r.state.stepInEpoch}; resume with: ${commandLine().replace(/ --resume\b/, '')} --resume`);
      process.exitCode = 130;
      return;
    }
    const dir = resolve(dirname(resolve(f.config)), config.output.weightsDir ?? config.output.dir);
    if (p.clip) {
      // A CLIP (contrastive) run: the whole model under CLIP names, its tokenizer, a card.
      const c = await publishClipPretrain(p, r, { dir, command: commandLine(), wallSeconds: (performance.now() - t0) / 1000 });
      const fin = c.card.final as { shippedF16: Record<string, number> };
      progress.log(`done: ${Object.entries(fin.shippedF16).map(([k, v]) => `${k} ${(100 * v).toFixed(2)} %`).join(', ')} (F16 weights read back through the CLIP loader)`);
      progress.log(`weights ${relative(process.cwd(), c.weightsFile)}\ntokenizer ${relative(process.cwd(), c.tokenizerFile)}\ncard ${relative(process.cwd(), c.cardFile)}`);
      return;
    }
    const out = await publishPretrain(p, r, { dir, command: commandLine(), wallSeconds: (performance.now() - t0) / 1000 });
    const fin = out.card.final as { shippedF16: Record<string, number> };
    progress.log(`done: ${Object.entries(fin.shippedF16).map(([k, v]) => `${k} ${(100 * v).toFixed(2)} %`).join(', ')} (F16 weights read back)`);
    progress.log(`weights ${relative(process.cwd(), out.weightsFile)}\nheads ${relative(process.cwd(), out.headsFile)}\ncard ${relative(process.cwd(), out.cardFile)}\nreport ${relative(process.cwd(), job.outDir)}/report.html`);
  } finally {
    process.off('SIGINT', onSigint);
  }
}
