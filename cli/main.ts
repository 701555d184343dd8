/**
 * `edgeprompt` command line. Each command group lives in its own module; this file wires them to
 * commander and reports errors through errors.ts: a coded error is one message without a stack
 * trace, exit 2 when the input was at fault, 1 when EdgePrompt failed, 130 after Ctrl-C.
 */
import { Command } from 'commander';
import { CompilerError } from '../compiler/ops/errors.ts';
import { errorReport } from './errors.ts';
import { runProgram } from '../runtime/cli-entry.ts';
import { exportBackboneCommand } from './export-backbone.ts';
import { infoCommand } from './info.ts';
import { demoCommand } from './demo.ts';
import { trainCommand } from './train.ts';
import { pretrainCommand } from './pretrain.ts';
import { explainCommand } from './explain.ts';
import { addDataCommands } from './data.ts';
import { addArtifactCommands } from './artifact.ts';
import { addCompileCommand } from './compile.ts';
import { addKeysCommands } from './keys.ts';
import { runtimeCommands } from '../runtime/cli.ts';
import { deployCommand } from './deploy.ts';
import { VERSION } from '../runtime/version.ts';
import { recordCommand } from './record.ts';
import { dashboardCommand, dashboardUserCommand } from './dashboard.ts';

const program = new Command('edgeprompt')
  .description('Compile prompt-tuned vision models into signed ONNX artifacts and run them on line cameras.')
  .version(VERSION)
  .showHelpAfterError()
  .exitOverride()
  // A command's options stay its own: `deploy status --url …` must reach `status`, not `deploy`.
  .enablePositionalOptions();

program
  .command('export-backbone')
  .description('export a timm ViT checkpoint (.safetensors) to ONNX through the EdgePrompt model definition')
  .requiredOption('--weights <file>', 'timm-named .safetensors checkpoint')
  .requiredOption('--arch <name>', 'architecture, e.g. vit_tiny_patch16_224')
  .requiredOption('--out <file>', 'output .onnx file')
  .option('--img-size <px>', 'input size (position embedding is resampled)', (v) => parseIntArg('--img-size', v))
  .option('--num-classes <n>', 'classes of the head (0: features only)', (v) => parseIntArg('--num-classes', v))
  .option('--no-fold', 'emit weight-only sub-expressions as nodes instead of folding them')
  .option('--full-last-block', 'compute every token in the last block (default: CLS row only)')
  .option('--verify', 'run the export in onnxruntime and compare with tfjs on random inputs')
  .action(exportBackboneCommand);

program
  .command('info')
  .description('describe a .safetensors checkpoint or an .onnx model')
  .argument('<file>')
  .action(infoCommand);

program
  .command('train')
  .description('train a prompt method from a compile config (checkpoints every epoch; Ctrl-C saves, --resume continues)')
  .requiredOption('-c, --config <file>', 'compile config (YAML)')
  .option('--set <key=value>', 'override a config field, e.g. recipe.epochs=3 (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
  .option('--epochs <n>', 'recipe.epochs', (v) => parseIntArg('--epochs', v))
  .option('--out <dir>', 'output.dir')
  .option('--seed <n>', 'seed', (v) => parseIntArg('--seed', v))
  .option('--engine <name>', 'ort | tfjs | auto (engine)')
  .option('--resume', 'continue from the checkpoint in the output folder')
  .option('--strict', 'stop with an error (exit 2) when the run diverges, collapses onto one class or does not learn (default: a warning)')
  .option('--progress <mode>', 'auto | bar | lines | none', 'auto')
  .action((opts) => trainCommand(opts));

program
  .command('pretrain')
  .description('pretrain a backbone (every tensor) on a mixture of sources: F16 timm weights, per-source heads and a card')
  .requiredOption('-c, --config <file>', 'pretraining config (YAML), e.g. configs/pretrain/<name>.yaml')
  .option('--set <key=value>', 'override a config field, e.g. recipe.epochs=3 (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
  .option('--epochs <n>', 'recipe.epochs', (v) => parseIntArg('--epochs', v))
  .option('--out <dir>', 'output.dir and output.weightsDir (everything the run writes)')
  .option('--engine <name>', 'ort | tfjs | auto (engine)')
  .option('--resume', 'continue from the checkpoint in the output folder')
  .option('--progress <mode>', 'auto | bar | lines | none', 'auto')
  .action((opts) => pretrainCommand(opts));

program
  .command('explain')
  .description('attention rollout and Grad-CAM of a trained task with and without its prompt, over a folder of images, in one HTML page')
  .requiredOption('-c, --config <file>', 'compile config (YAML) the task was trained with')
  .requiredOption('--images <dir>', 'folder of .jpg/.jpeg/.png/.webp images')
  .option('--out <dir>', 'output folder (default: <output.dir>/explain)')
  .option('--checkpoint <file>', 'trained tensors (default: <output.dir>/best.safetensors)')
  .option('--size <px>', 'side of each displayed image', (v) => parseIntArg('--size', v), 192)
  .option('--set <key=value>', 'override a config field (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
  .action((f) => explainCommand(f));

addDataCommands(program);
addCompileCommand(program, parseNumberArg);
addKeysCommands(program);
addArtifactCommands(program);
for (const c of runtimeCommands()) program.addCommand(c); // run, watch: the device side, also bundled alone
program.addCommand(deployCommand()); // deploy, deploy status: the line PC's rollout
program.addCommand(recordCommand()); // the recorder and the line dashboard
program.addCommand(dashboardCommand());
program.addCommand(dashboardUserCommand());

program
  .command('demo')
  .description('the main job on embedded defaults: sample line video → signed artifact → runtime → MQTT → live results and a summary')
  .option('--rebuild', 'compile the demo artifact again (trains; a few minutes)')
  .option('--per-class <n>', 'items per class in the sample video', (v) => parseIntArg('--per-class', v), 12)
  .option('--fps <n>', 'camera frame rate (default: the demo line\'s camera.fps)', (v) => parseIntArg('--fps', v))
  .option('--line <file>', 'the demo line: compile config, artifact, items, reject gate (default configs/demo/demo.yaml)')
  .option('--dashboard', 'also serve the line dashboard (http://127.0.0.1:8080) and keep the line running until Ctrl-C')
  .action((f) => demoCommand(f));

function parseNumberArg(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new CompilerError('FLAG_INVALID', `${flag}: expected a non-negative number, got "${v}"`);
  return n;
}

function parseIntArg(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new CompilerError('FLAG_INVALID', `${flag}: expected a non-negative integer, got "${v}"`);
  return n;
}

// Not rethrown: tfjs-wasm's uncaughtException hook would print its whole minified source.
const code = await runProgram(program, process.argv, errorReport);
if (code !== 0) process.exit(code);
