// GStreamer as the decoder: `gst-launch-1.0 -q <pipeline> ! <caps> ! fdsink fd=1`.
// The user's pipeline is a config string, so a Jetson pipeline is a config change, e.g.
//   CSI:  nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 ! nvvidconv
//   USB:  v4l2src device=/dev/video0 ! image/jpeg,width=1280,height=720 ! nvv4l2decoder mjpeg=1 ! nvvidconv
//   RTSP: rtspsrc location=rtsp://cam/stream latency=200 protocols=tcp ! rtph264depay ! h264parse ! nvv4l2decoder ! nvvidconv
// with `channels: 4` (nvvidconv emits RGBA without a CPU conversion) and `convert: false`.
// We always append the caps `video/x-raw,format=RGB|RGBA,width=W,height=H`: a pipeline that cannot
// produce exactly the model's frame fails negotiation loudly instead of desynchronising the framing.
// `-q` is required: without it gst-launch prints progress to stdout, into the frame stream.

import { CameraError } from '../errors.ts';
import type { FrameFormat } from './frame.ts';
import { ProcessSource } from './process-source.ts';

export interface GstOptions {
  camera: string;
  format: FrameFormat;
  /** Pipeline up to raw video, without a sink; shell-style quotes are allowed and removed. */
  pipeline: string;
  /** Insert `videoconvert ! videoscale` (CPU) before the caps. Default true. */
  convert?: boolean;
  /** True when the pipeline ends by itself (a file, num-buffers): EOS is then not a crash. */
  finite?: boolean;
  binary?: string;
  stderrLines?: number;
}

/**
 * Splits a pipeline the way a POSIX shell would (whitespace; '…' literal; "…" with \-escapes).
 * gst-launch escapes spaces inside each argv entry, so a whole pipeline passed as one argument is
 * a syntax error: it must arrive as separate tokens.
 */
export function splitPipeline(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inToken = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === "'") {
      const j = text.indexOf("'", i + 1);
      if (j < 0) throw new CameraError('E_CAMERA_CONFIG', `pipeline: unterminated ' quote at character ${i}`, { field: 'pipeline' });
      cur += text.slice(i + 1, j);
      inToken = true;
      i = j + 1;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === '\\' && j + 1 < text.length) j++;
        cur += text[j];
      }
      if (j >= text.length) throw new CameraError('E_CAMERA_CONFIG', `pipeline: unterminated " quote at character ${i}`, { field: 'pipeline' });
      inToken = true;
      i = j + 1;
    } else if (c === '\\' && i + 1 < text.length) {
      cur += text[i + 1];
      inToken = true;
      i += 2;
    } else if (/\s/.test(c)) {
      if (inToken) out.push(cur);
      cur = '';
      inToken = false;
      i++;
    } else {
      cur += c;
      inToken = true;
      i++;
    }
  }
  if (inToken) out.push(cur);
  return out;
}

export function gstArgs(o: GstOptions): string[] {
  const tokens = splitPipeline(o.pipeline);
  if (tokens.length === 0) throw new CameraError('E_CAMERA_CONFIG', 'pipeline: is empty; give a source such as "v4l2src device=/dev/video0"', { field: 'pipeline' });
  if (tokens.at(-1) === '!') throw new CameraError('E_CAMERA_CONFIG', `pipeline: must not end with '!' (EdgePrompt appends the caps and the sink)`, { field: 'pipeline' });
  if (tokens.some((t) => /^(fd|app|fake|auto\w*)sink$/.test(t))) {
    throw new CameraError('E_CAMERA_CONFIG', `pipeline: must not contain a sink; EdgePrompt appends '! <caps> ! fdsink fd=1'`, { field: 'pipeline' });
  }
  const { width, height, channels } = o.format;
  const caps = `video/x-raw,format=${channels === 4 ? 'RGBA' : 'RGB'},width=${width},height=${height}`;
  const conv = o.convert ?? true ? ['!', 'videoconvert', '!', 'videoscale'] : [];
  return ['-q', ...tokens, ...conv, '!', caps, '!', 'fdsink', 'fd=1', 'sync=false'];
}

export class GstreamerSource extends ProcessSource {
  constructor(readonly options: GstOptions) {
    super({
      camera: options.camera,
      kind: 'gstreamer',
      format: options.format,
      finite: options.finite ?? false,
      stderrLines: options.stderrLines ?? 50,
      spec: () => ({ command: options.binary ?? 'gst-launch-1.0', args: gstArgs(options) }),
    });
  }
}
