/**
 * The `biokiosk` command line. Every command has --help; scripts use --json.
 * Exit codes: 0 success, 2 bad usage or bad input (one line naming what was wrong), 1 internal failure; doctor: 3
 * when the box lacks something.
 */
import { Command, CommanderError } from 'commander';
import { isBiokioskError } from '../protocol/errors.ts';
import { packageVersion } from '../protocol/runtime.ts';
import { registerExtract } from './extract.ts';
import { registerMatch } from './match.ts';
import { registerEval } from './evaluate.ts';
import { registerSynth } from './synth.ts';
import { registerDemo } from './demo.ts';
import { registerVerifier } from './verifier.ts';
import { registerKiosk } from './kiosk.ts';
import { registerCapture } from './capture.ts';
import { registerBroker } from './broker.ts';
import { registerWitness } from './witness.ts';
import { registerProvision } from './provision.ts';
import { registerDoctor } from './doctor.ts';
import { ExitWith } from './options.ts';
import { expandConfigArgs } from '../device/config.ts';

export const EXIT_OK = 0;
export const EXIT_INTERNAL = 1;
export const EXIT_INPUT = 2;

export function buildProgram(): Command {
  const program = new Command('biokiosk')
    .description('Biometric kiosk runtime: extract and match templates, attest, relay, verify, provision.')
    .version(packageVersion())
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  registerExtract(program);
  registerMatch(program);
  registerEval(program);
  registerSynth(program);
  registerDemo(program);
  registerVerifier(program);
  registerKiosk(program);
  registerCapture(program);
  registerBroker(program);
  registerWitness(program);
  registerProvision(program);
  registerDoctor(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    // `run --config FILE`: the file's settings become flags placed before the given ones, which win.
    if (argv[0] === 'run') argv = expandConfigArgs(argv, 1);
    await program.parseAsync(argv, { from: 'user' });
    return EXIT_OK;
  } catch (e) {
    return reportError(e, argv.includes('--json'));
  }
}

function reportError(e: unknown, json: boolean): number {
  if (e instanceof ExitWith) return e.code;
  if (e instanceof CommanderError) {
    // --help and --version end through here with exit code 0.
    if (e.exitCode === 0) return EXIT_OK;
    return EXIT_INPUT;
  }
  if (isBiokioskError(e)) {
    if (json) process.stdout.write(JSON.stringify({ ok: false, error: e.toJSON() }) + '\n');
    process.stderr.write(`biokiosk: ${e.code}: ${e.message}\n`);
    return e.kind === 'input' ? EXIT_INPUT : EXIT_INTERNAL;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  if (json) process.stdout.write(JSON.stringify({ ok: false, error: { code: 'Internal', message: err.message } }) + '\n');
  process.stderr.write(`biokiosk: internal error: ${err.stack ?? err.message}\n`);
  return EXIT_INTERNAL;
}
