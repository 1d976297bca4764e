/**
 * `biokiosk witness`: a C2SP tlog-witness that a party other than the verifiers' operator runs (the witness itself
 * is witness/; this parses flags and prints):
 * - `witness serve`: cosigns the given logs' checkpoints over HTTP, only when consistent with what it cosigned
 *   before; a log caught showing two histories is reported on stderr (`ALERT:`) with evidence in DIR/alerts.
 * - `witness vkey`: the witness's verifier key, for the logs' operators to configure (created on first use).
 * - `witness latest`: the latest checkpoint it cosigned for a log, as a full note.
 */
import type { Command } from 'commander';
import { BiokioskError, UsageError } from '../protocol/errors.ts';
import { parseVkey, type NoteVerifier } from '../protocol/note.ts';
import { loadWitnessKey } from '../witness/key.ts';
import { startWitnessServer } from '../witness/server.ts';
import { cosignedNote, WitnessState } from '../witness/state.ts';
import { Witness, type WitnessAlert } from '../witness/witness.ts';
import { printJson } from './options.ts';

const DEFAULT_DIR = 'biokiosk-witness';
const DEFAULT_LISTEN = '127.0.0.1:7380';

const collect = (v: string, all: string[] = []) => [...all, v];
const notice = (m: string) => process.stderr.write(`biokiosk: ${m}\n`);

/** HOST:PORT, with an IPv6 host in brackets ([::1]:7380); port 0 picks a free one. */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):([0-9]{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--listen takes HOST:PORT (e.g. ${DEFAULT_LISTEN} or [::1]:7380), got "${value}"`);
  return { host: m[1] ?? m[2]!, port };
}

/** --log keys grouped by name: the vkey's name is the log's origin; several keys of one name are a rotation. */
function logsFrom(vkeys: string[]): Map<string, NoteVerifier[]> {
  if (vkeys.length === 0) throw new UsageError('give at least one --log VKEY (a log whose checkpoints this witness cosigns)');
  const logs = new Map<string, NoteVerifier[]>();
  for (const v of vkeys) {
    const key = parseVkey(v);
    const keys = logs.get(key.name) ?? [];
    if (!keys.some((k) => k.keyId === key.keyId && k.publicKey.equals(key.publicKey))) keys.push(key);
    logs.set(key.name, keys);
  }
  return logs;
}

function describeAlert(a: WitnessAlert): string {
  const where = a.evidenceFile ? ` (evidence: ${a.evidenceFile})` : a.evidenceError ? ` (the evidence could not be written: ${a.evidenceError})` : ' (evidence already written)';
  return `ALERT: ${a.kind}: ${a.message}${where}\n`;
}

export function registerWitness(program: Command): void {
  const w = program.command('witness').description("A tlog-witness (c2sp.org/tlog-witness) for the verifiers' audit logs, run by another party: cosigns only checkpoints consistent with the ones it cosigned before.");

  w.command('serve')
    .description('Serve POST /add-checkpoint for the given logs (and GET /latest/<origin>); prints its URL and verifier key, alerts on stderr.')
    .option('--dir <dir>', 'state folder (witness key, cosigned checkpoints, alerts)', DEFAULT_DIR)
    .requiredOption('--name <name>', "the witness's name, e.g. insurer.example/witness (its key is created with this name on first start)")
    .option('--log <vkey>', "a log's verifier key; its name is the log's origin. Repeat for each log, and for each key of one log during a key rotation", collect, [])
    .option('--listen <host:port>', 'address to listen on (port 0: any free port)', DEFAULT_LISTEN)
    .action(async (o: { dir: string; name: string; log: string[]; listen: string }) => {
      const listen = parseListen(o.listen);
      const logs = logsFrom(o.log);
      const key = await loadWitnessKey(o.dir, { name: o.name, onNotice: notice });
      const state = await WitnessState.open(o.dir, { onNotice: notice });
      try {
        const witness = new Witness({
          logs,
          state,
          signer: key.signer,
          onAlert: (a) => process.stderr.write(describeAlert(a)),
          onCosigned: (c) => process.stdout.write(`cosigned ${c.origin} ${c.treeSize} ${c.rootHash.toString('base64')}\n`),
        });
        const server = await startWitnessServer(witness, { ...listen, onError: (e) => process.stderr.write(`witness: internal error: ${e instanceof Error ? e.message : String(e)}\n`) });
        process.stdout.write(`witness ${key.name} listening on ${server.url}\n${key.vkey}\n`);
        process.stderr.write(`witness: ${key.created ? 'created its key; ' : ''}cosigning for ${[...logs].map(([origin, keys]) => `${origin} (${keys.length} key${keys.length > 1 ? 's' : ''})`).join(', ')}; state in ${o.dir}\n`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await server.close();
      } finally {
        await state.close();
      }
    });

  w.command('vkey')
    .description("Print the witness's verifier key (creating the key with --name the first time).")
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .option('--name <name>', "the witness's name, e.g. insurer.example/witness (needed to create the key; checked otherwise)")
    .option('--json', 'one JSON object: {name, vkey, created}')
    .action(async (o: { dir: string; name?: string; json?: boolean }) => {
      const key = await loadWitnessKey(o.dir, { name: o.name, onNotice: notice });
      if (o.json) return printJson({ name: key.name, vkey: key.vkey, created: key.created });
      if (key.created) process.stderr.write(`created witness key ${key.name} in ${o.dir}\n`);
      process.stdout.write(`${key.vkey}\n`);
    });

  w.command('latest')
    .description('Print the latest checkpoint the witness cosigned for a log: the log signature(s) and its cosignature.')
    .option('--dir <dir>', 'state folder', DEFAULT_DIR)
    .requiredOption('--origin <origin>', "the log's origin (its key's name)")
    .option('--json', 'one JSON object: {origin, treeSize, rootHash, cosignedAt, note}')
    .action(async (o: { dir: string; origin: string; json?: boolean }) => {
      // Read-only: works next to a running `witness serve` on the same folder.
      const state = await WitnessState.open(o.dir, { readOnly: true, onNotice: notice });
      const c = state.get(o.origin);
      if (!c) throw new BiokioskError('NoCosignedCheckpoint', `the witness in ${o.dir} has cosigned no checkpoint of ${o.origin}`);
      if (o.json) return printJson({ origin: c.origin, treeSize: c.treeSize, rootHash: c.rootHash.toString('base64'), cosignedAt: c.cosignedAt, note: cosignedNote(c) });
      process.stdout.write(cosignedNote(c));
    });
}
