import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // ONNX sessions and ffmpeg children are heavy on a 2-core machine: run files one at a time.
    fileParallelism: false,
  },
});
