/**
 * Camera frame sources by setting string (see spec.ts for the forms): the one entry point the rest of biokiosk
 * needs. Every source hands out encoded images (Frame), never decoded pixels or templates.
 */
import { VirtualCamera } from '../virtual/camera.ts';
import { DirectoryFrameSource } from './directory-source.ts';
import { v4l2Source, type FrameSourceTimingOptions } from './ffmpeg-source.ts';
import { HttpMjpegFrameSource } from './http-mjpeg-source.ts';
import { parseFrameSourceSpec, type FrameSourceSpec } from './spec.ts';
import type { FrameSource } from './types.ts';

export type { Frame, FrameSource, FrameSourceStats, CameraErrorReason } from './types.ts';
export { CameraError, CameraTimeoutError, CameraConfigError, isCameraEnded } from './types.ts';
export { parseFrameSourceSpec, type FrameSourceSpec } from './spec.ts';
export { FfmpegFrameSource, v4l2Source, type FfmpegSourceOptions, type V4l2SourceOptions, type FrameSourceTimingOptions } from './ffmpeg-source.ts';
export { HttpMjpegFrameSource, httpMjpegSource, type HttpMjpegSourceOptions } from './http-mjpeg-source.ts';
export { DirectoryFrameSource, type DirectorySourceOptions } from './directory-source.ts';
export { VirtualCamera, virtualCamera, type VirtualCameraOptions } from '../virtual/camera.ts';

export interface OpenFrameSourceOptions extends FrameSourceTimingOptions {
  /** The ffmpeg binary for v4l2: and virtual: sources. Default "ffmpeg" from PATH. */
  ffmpegPath?: string;
}

/** The source a setting names, not yet opened (a bad setting throws CameraConfigError, kind "input"). */
export function createFrameSource(spec: string | FrameSourceSpec, options: OpenFrameSourceOptions = {}): FrameSource {
  const s = typeof spec === 'string' ? parseFrameSourceSpec(spec) : spec;
  switch (s.kind) {
    case 'v4l2':
      return v4l2Source({ ...options, ...s });
    case 'http':
      return new HttpMjpegFrameSource({ ...options, url: s.url });
    case 'dir':
      return new DirectoryFrameSource({ dir: s.path, loop: s.loop, fps: s.fps });
    case 'virtual':
      return new VirtualCamera({ ...options, ...s, images: s.path });
  }
}

/** Creates and opens the source a setting names; resolves once its first frame has arrived. */
export async function openFrameSource(spec: string | FrameSourceSpec, options: OpenFrameSourceOptions = {}): Promise<FrameSource> {
  const source = createFrameSource(spec, options);
  await source.open();
  return source;
}
