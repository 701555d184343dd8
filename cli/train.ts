/**
 * `edgeprompt train -c config.yaml`: train with a progress bar, checkpoint every epoch, write a
 * report; Ctrl-C saves a checkpoint at the current step and `--resume` continues from it (after
 * checking the run was trained for this config; a finished run is left as it is).
 */
import { loadCompileConfig } from '../compiler/config/compile-config.ts';
import { prepareJob } from '../compiler/train/job.ts';
import { train } from '../compiler/train/loop.ts';
import { makeProgress } from '../compiler/train/progress.ts';
import { describeBackend } from '../compiler/ops/tf-backend.ts';

export interface TrainFlags {
  config: string;
  set: string[];
  epochs?: number;
  out?: string;
  seed?: number;
  engine?: string;
  resume?: boolean;
  strict?: boolean;
  progress: 'auto' | 'bar' | 'lines' | 'none';
}

export async function trainCommand(f: TrainFlags): Promise<void> {
  const sets = [...f.set];
  if (f.epochs !== undefined) sets.push(`recipe.epochs=${f.epochs}`);
  if (f.out !== undefined) sets.push(`output.dir=${f.out}`);
  if (f.seed !== undefined) sets.push(`seed=${f.seed}`);
  if (f.engine !== undefined) sets.push(`engine=${f.engine}`);
  const config = loadCompileConfig(f.config, sets);
  const progress = makeProgress(f.progress);
  const abort = new AbortController();
  const onSigint = () => {
    if (abort.signal.aborted) process.exit(130); // a second Ctrl-C does not wait
    progress.log('Ctrl-C: finishing the current step and saving a checkpoint (press again to quit at once)');
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    const p = await prepareJob(config, f.config, { resume: f.resume === true, strict: f.strict === true, progress, signal: abort.signal });
    const { job } = p;
    const nParams = [...job.initial.values()].reduce((s, t) => s + t.data.length, 0);
    progress.log(describeBackend(p.backend)); // the engine reports itself when it starts
    progress.log(
      `${job.name}: ${job.method.name} ${JSON.stringify(job.options)} on ${p.cfg.name} | ${nParams.toLocaleString('en-US')} trainable values | ` +
        `${job.data.trainSize} train / ${p.split.val.samples.length} val images, ${job.data.classes.length} classes | ${job.recipe.epochs} epochs × batch ${job.recipe.batchSize}, ${job.recipe.optimizer.kind} lr ${job.recipe.optimizer.lr}`,
    );
    const r = await train(job);
    const s = r.state;
    progress.log(
      r.interrupted
        ? `stopped at epoch ${s.epoch + 1}, step ${s.stepInEpoch}; resume with: edgeprompt train -c ${f.config} --resume`
        : r.plan === 'finished'
          ? 'nothing to train: that run is finished (train without --resume starts over)'
          : `done: best validation top-1 ${(100 * s.bestTop1).toFixed(2)} % at epoch ${s.bestEpoch}${r.earlyStopped ? ' (early stop)' : ''}`,
    );
    progress.log(`checkpoint ${r.checkpointDir}\nbest tensors ${r.bestParamsFile}\nreport ${job.outDir}/report.html`);
    if (r.interrupted) process.exitCode = 130;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
