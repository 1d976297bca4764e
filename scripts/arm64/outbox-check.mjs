#!/usr/bin/env node
// The kiosk's outbox on this machine's better-sqlite3 build (scripts/arm64-check.sh runs it under arm64 emulation):
// attestations enqueued survive closing and reopening the database, come back due, and leave when acknowledged.
//   node outbox-check.mjs RELEASE_DIR STATE_DIR [N]   -> JSON on stdout, exit 1 if anything was lost
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [release, dir, n = '200'] = process.argv.slice(2);
const { Outbox } = await import(pathToFileURL(join(release, 'dist', 'device', 'outbox.js')).href);
mkdirSync(dir, { recursive: true, mode: 0o700 });
const path = join(dir, 'outbox.db');
const count = Number(n);
const t0 = performance.now();
let box = new Outbox(path);
for (let i = 1; i <= count; i++) box.enqueue(`att-${i}`, i, Buffer.from(`payload ${i}`), Date.now(), Buffer.alloc(32, i));
const enqueueMs = performance.now() - t0;
box.close();
box = new Outbox(path);
const kept = box.all();
const due = box.due(Date.now() + 1000, count + 10).length;
for (const e of kept) box.acknowledge(e.attId);
const left = box.all().length;
box.close();
const ok = kept.length === count && due === count && left === 0 && kept.every((e, i) => Buffer.from(e.payload).toString() === `payload ${e.seq}` && e.seq === i + 1);
process.stdout.write(JSON.stringify({ ok, arch: process.arch, enqueued: count, keptAfterReopen: kept.length, due, leftAfterAck: left, enqueueMsPerEntry: enqueueMs / count }) + '\n');
process.exit(ok ? 0 : 1);
