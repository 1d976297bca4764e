/**
 * A verifier node as a separate process, for the reliability tests: opens the shared verifier folder and joins the
 * shared subscription. Prints `ready` once subscribed.
 *   node --import tsx test/helpers/verifier-process.ts '<json config>'
 */
import { VerifierNode } from '../../verifier/node.ts';
import { openVerifier } from '../../verifier/setup.ts';

const cfg = JSON.parse(process.argv[2]!) as { dir: string; brokerUrl: string; clientId: string; allowedModels: string[] };
const v = await openVerifier(cfg.dir, { allowedModels: cfg.allowedModels, precheckWorkers: 2 });
const node = new VerifierNode(v.verifier, v.store, {
  brokerUrl: cfg.brokerUrl,
  clientId: cfg.clientId,
  protocolVersion: 5,
  group: 'verifiers',
  onError: (e) => process.stderr.write(`verifier ${cfg.clientId}: ${e instanceof Error ? e.message : String(e)}\n`),
});
await node.start();
process.stdout.write('ready\n');
