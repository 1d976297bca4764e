import type { Command } from 'commander';
// placeholder until the eval command lands
export function registerEval(_program: Command): void {}
