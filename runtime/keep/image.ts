// How a kept frame travels: PNG (lossless: the exact pixels the model saw) or JPEG (a fraction of
// the size, for links and spools that must hold many). Both encoders are plain TypeScript on
// node:zlib, so the device bundle carries them; docs/bench/retune.md compares their sizes on the
// benchmark parts line. PNG deflates on the thread pool; JPEG runs on the main thread (≈ a few
// ms for a 224 px frame), which the keep limits bound.

import { encodePngAsync } from '../pipeline/png.ts';
import { encodeJpeg } from './jpeg.ts';

export interface ImageEncoding {
  format: 'png' | 'jpeg';
  /** JPEG quality 1..100 (IJG scale). */
  quality: number;
}

export interface EncodedImage {
  contentType: 'image/png' | 'image/jpeg';
  data: Buffer;
}

export async function encodeImage(pixels: Uint8Array, width: number, height: number, channels: 3 | 4, enc: ImageEncoding): Promise<EncodedImage> {
  if (enc.format === 'jpeg') return { contentType: 'image/jpeg', data: encodeJpeg(pixels, width, height, channels, enc.quality) };
  return { contentType: 'image/png', data: await encodePngAsync(pixels, width, height, channels, { filter: 'adaptive' }) };
}
