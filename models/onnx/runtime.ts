/**
 * onnxruntime-node, loaded on first use: a command that never runs a model (`--help`, `doctor`, `kiosk identity`,
 * the verifier's key and audit commands) never loads its native library, which starts faster and keeps those
 * commands working where that library cannot load (under emulation with the host's /sys, see README).
 */
import type * as Ort from 'onnxruntime-node';

let loaded: typeof Ort | undefined;

export async function onnxRuntime(): Promise<typeof Ort> {
  loaded ??= await import('onnxruntime-node');
  return loaded;
}

/** The module once a session exists (whoever holds a session has loaded it). */
export function loadedOnnxRuntime(): typeof Ort {
  if (!loaded) throw new Error('onnxruntime-node is used before any model was loaded');
  return loaded;
}
