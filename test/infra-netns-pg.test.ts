/**
 * Proves the test infrastructure for verifiers on separate hosts: a real PostgreSQL inside a namespace host `db`,
 * reached from another namespace host `app` and from the root namespace; restart keeps data, a SIGKILL crash
 * recovers, a cut link partitions a host, and destroy() leaves nothing behind.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetwork, ipBinary, type Network } from './helpers/netns.ts';
import { startPostgres, type PgServer } from './helpers/postgres.ts';

const ROOT = join(import.meta.dirname, '..');

// Runs inside `app`: connect, SELECT 1, print the row; on failure print the error and exit 1.
const CLIENT_SCRIPT = `
const { Client } = require('pg');
const [url, timeout] = process.argv.slice(1);
const c = new Client({ connectionString: url, connectionTimeoutMillis: Number(timeout) });
c.on('error', () => {});
c.connect()
  .then(() => c.query('SELECT 1 AS one'))
  .then((r) => { console.log(JSON.stringify(r.rows[0])); return c.end(); })
  .then(() => process.exit(0), (e) => { console.error(e.code || '', e.message); process.exit(1); });
`;

function runIn(net: Network, host: string, url: string, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // cwd = repository root so require('pg') finds node_modules.
    const child = net.exec(host, process.execPath, ['-e', CLIENT_SCRIPT, url, String(timeoutMs)], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout: stdout.trim(), stderr: stderr.trim() }));
  });
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

function ip(...args: string[]): string {
  return execFileSync(ipBinary(), args, { encoding: 'utf8' });
}

describe('separate hosts (network namespaces) with PostgreSQL', () => {
  let net: Network;
  let db: PgServer;
  let appUrl: string;

  beforeAll(async () => {
    net = await createNetwork(['db', 'app']);
    db = await startPostgres({ netns: net.hosts.db!.ns, listen: net.hosts.db!.address });
  });

  afterAll(async () => {
    await db?.cleanup();
    await net?.destroy();
  });

  it('serves the other namespace host and the root namespace over TCP with a password', async () => {
    expect(db.host).toBe(net.hosts.db!.address);
    expect(db.url()).toMatch(new RegExp(`^postgres://biokiosk:[^@]+@${db.host.replace(/\./g, '\\.')}:${db.port}/postgres$`));

    const fromApp = await runIn(net, 'app', db.url(), 5_000);
    expect(fromApp, fromApp.stderr).toMatchObject({ code: 0, stdout: '{"one":1}' });

    const fromRoot = await query<{ one: number; addr: string }>(db.url(), 'SELECT 1 AS one, host(inet_server_addr()) AS addr');
    expect(fromRoot).toEqual([{ one: 1, addr: net.hosts.db!.address }]);

    // The password is required over TCP.
    const wrong = db.url().replace(`:${encodeURIComponent(db.password)}@`, ':wrong@');
    await expect(query(wrong, 'SELECT 1')).rejects.toThrow(/password authentication failed/);
  });

  it('creates a database, and restart() keeps its data', async () => {
    appUrl = await db.createDatabase('app');
    expect(appUrl).toBe(db.url('app'));
    await query(appUrl, 'CREATE TABLE t (id int PRIMARY KEY, v text)');
    await query(appUrl, "INSERT INTO t VALUES (1, 'before restart')");

    await db.restart();
    expect(db.running).toBe(true);
    expect(await query(appUrl, 'SELECT id, v FROM t ORDER BY id')).toEqual([{ id: 1, v: 'before restart' }]);
  });

  it('kill() crashes the server and start() recovers committed data', async () => {
    await query(appUrl, "INSERT INTO t VALUES (2, 'before crash')");
    const [{ pid: before }] = (await query<{ pid: number }>(appUrl, 'SELECT pg_backend_pid() AS pid')) as [{ pid: number }];
    expect(before).toBeGreaterThan(0);

    await db.kill();
    expect(db.running).toBe(false);
    await expect(query(db.url(), 'SELECT 1')).rejects.toThrow();

    await db.start();
    expect(await query(appUrl, 'SELECT id, v FROM t ORDER BY id')).toEqual([
      { id: 1, v: 'before restart' },
      { id: 2, v: 'before crash' },
    ]);
    const fromApp = await runIn(net, 'app', appUrl, 5_000);
    expect(fromApp, fromApp.stderr).toMatchObject({ code: 0, stdout: '{"one":1}' });
  });

  it('cut() partitions a host (connections time out) and heal() restores it', async () => {
    await net.cut('app');
    const t0 = Date.now();
    const cut = await runIn(net, 'app', db.url(), 1_500);
    expect(cut.code).toBe(1);
    expect(cut.stderr).toMatch(/timeout/i);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_400);
    // Only `app` is cut off: the root namespace still reaches `db`.
    expect(await query(db.url(), 'SELECT 1 AS one')).toEqual([{ one: 1 }]);

    await net.heal('app');
    const healed = await runIn(net, 'app', db.url(), 5_000);
    expect(healed, healed.stderr).toMatchObject({ code: 0, stdout: '{"one":1}' });
  });

  it('keeps traffic inside the test network: the namespaces have no route elsewhere', () => {
    const routes = ip('-n', net.hosts.app!.ns, '-4', 'route', 'show');
    expect(routes).not.toMatch(/default/);
    expect(routes.trim().split('\n')).toEqual([expect.stringContaining(net.subnet)]);
    expect(() => ip('-n', net.hosts.app!.ns, 'route', 'get', '192.0.2.1')).toThrow();
  });

  it('destroy() removes every namespace and interface, and is safe to call twice', async () => {
    await db.cleanup();
    await net.destroy();
    await net.destroy();
    const namespaces = ip('netns', 'list');
    const links = ip('-o', 'link', 'show');
    for (const { ns } of Object.values(net.hosts)) expect(namespaces).not.toContain(ns);
    expect(namespaces).not.toContain(net.prefix);
    expect(links).not.toContain(net.prefix);
    expect(ip('-o', '-4', 'addr', 'show')).not.toContain(net.bridgeAddress + '/');
  });
});
