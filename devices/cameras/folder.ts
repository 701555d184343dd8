// Image-folder replay for test benches: jpg/png/webp files (recursively, sorted by path) decoded and
// resized with sharp to the model's W×H. A file inside a sub-folder carries that folder's name as
// its label, so `bench/<class>/<image>` is a labelled set. Unreadable images are skipped and noted
// in diagnostics(); an empty folder ends the run as 'crashed' with E_EMPTY_FOLDER.

import { readdir } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { CameraError, errorInfo } from '../errors.ts';
import { BaseSource } from './base.ts';
import type { FrameFormat } from './frame.ts';
import type { ResizeMode } from './ffmpeg.ts';

const IMAGE = /\.(jpe?g|png|webp)$/i;

export interface FolderOptions {
  camera: string;
  format: FrameFormat;
  path: string;
  loop?: boolean;
  /** Frames per second; default: as fast as images decode. */
  fps?: number;
  resize?: ResizeMode;
}

/** Image files under `root`, as paths relative to it, in code-point order (stable across machines). */
export async function listImages(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((e) => e.isFile() && IMAGE.test(e.name))
    .map((e) => relative(root, join(e.parentPath, e.name)));
  return files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Label of an image: its parent folder's name, or undefined for files directly in the root. */
function labelOf(relPath: string): string | undefined {
  const parent = dirname(relPath);
  return parent === '.' ? undefined : basename(parent);
}

// sharp is loaded on first use: it is a native module the device bundle should not need unless a
// folder camera is configured.
let sharpModule: Promise<typeof import('sharp')> | null = null;
const loadSharp = (): Promise<typeof import('sharp')> => (sharpModule ??= import('sharp'));

export async function decodeImage(file: string, format: FrameFormat, resize: ResizeMode = 'stretch'): Promise<Buffer> {
  const sharp = (await loadSharp()).default;
  const img = sharp(file).resize(format.width, format.height, { fit: resize === 'stretch' ? 'fill' : 'cover', position: 'centre' });
  const withAlpha = format.channels === 4 ? img.ensureAlpha() : img.removeAlpha();
  const { data, info } = await withAlpha.raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== format.channels || data.length !== format.width * format.height * format.channels) {
    throw new CameraError('E_SOURCE', `${file}: decoded to ${info.width}x${info.height}x${info.channels}, expected ${format.width}x${format.height}x${format.channels}`);
  }
  return data;
}

export class FolderSource extends BaseSource {
  readonly kind = 'folder';
  readonly finite: boolean;
  private run = 0; // incremented by stop() and start(); a loop sees it change and quits
  private done: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;

  constructor(readonly options: FolderOptions) {
    super(options.camera, options.format);
    this.finite = options.loop !== true;
  }

  async start(): Promise<void> {
    if (this.state !== 'stopped') return;
    const run = ++this.run;
    this.tail.clear();
    this.setState('starting', 'start');
    this.done = this.loop(run);
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.run++;
    if (this.timer !== null) clearTimeout(this.timer);
    this.wake?.();
    await this.done;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      this.wake = r;
      this.timer = setTimeout(r, ms);
    });
  }

  private async loop(run: number): Promise<void> {
    const { path: root, fps } = this.options;
    let files: string[];
    try {
      files = await listImages(root);
    } catch (err) {
      const e = new CameraError('E_FOLDER', `folder camera '${this.camera}': cannot read ${root}: ${(err as Error).message}`, { field: 'path', cause: err });
      return this.finish({ reason: run === this.run ? 'crashed' : 'stopped', error: errorInfo(e), stderrTail: [] });
    }
    const interval = fps !== undefined ? 1000 / fps : 0;
    const t0 = Date.now();
    let emitted = 0;
    let decodedAny = false;
    for (;;) {
      for (const rel of files) {
        if (run !== this.run) return this.finish({ reason: 'stopped', stderrTail: this.tail.snapshot() });
        let data: Buffer;
        try {
          data = await decodeImage(join(root, rel), this.format, this.options.resize);
        } catch (err) {
          this.tail.add(`skipped ${rel}: ${(err as Error).message}`);
          continue;
        }
        decodedAny = true;
        // Pace against the start time, not the previous frame, so decode time does not add drift.
        const due = t0 + emitted * interval - Date.now();
        if (due > 0) await this.sleep(due);
        else await new Promise((r) => setImmediate(r)); // let consumers and timers run
        if (run !== this.run) return this.finish({ reason: 'stopped', stderrTail: this.tail.snapshot() });
        const label = labelOf(rel);
        this.emitFrame(data, label === undefined ? { file: rel } : { file: rel, label });
        emitted++;
      }
      if (!decodedAny) {
        const e = new CameraError('E_EMPTY_FOLDER', `folder camera '${this.camera}': no decodable jpg/png/webp images under ${root}`, { field: 'path' });
        return this.finish({ reason: 'crashed', error: errorInfo(e), stderrTail: this.tail.snapshot() });
      }
      if (this.options.loop !== true) return this.finish({ reason: 'eof', stderrTail: this.tail.snapshot() });
    }
  }
}
