/**
 * Separate network hosts for tests, as Linux network namespaces joined by a bridge in the root namespace:
 * every host gets its own namespace, a veth pair (the inner end `eth0` with 198.18.X.Y/24, the outer end on the
 * bridge) and loopback; the bridge holds 198.18.X.1 so the root namespace (test runner, kiosks) reaches every host.
 *
 * Traffic stays inside: the namespaces get no default route (only the connected /24), IPv6 addresses are not
 * generated on these links, and the /24 is picked at random inside 198.18.0.0/15 (the range reserved for test
 * networks, RFC 2544), avoiding any /24 already on an interface, so parallel test files do not clash.
 * Neighbour (ARP) entries are static, so cut() behaves like a real partition: packets vanish, connections time out.
 *
 * Needs root (ip netns add mounts under /run/netns) and iproute2. Fails (never skips) when either is missing:
 * `npm test` installs iproute2 (scripts/test-env.mjs).
 */
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export class NetnsError extends Error {
  override name = 'NetnsError';
}

export interface NetHost {
  /** The network namespace's name, for `ip netns exec` or startPostgres({ netns }). */
  ns: string;
  /** The host's IPv4 address on the test network (no prefix length). */
  address: string;
}

export interface Network {
  /** Unique per run, e.g. `bk3fa9`: the start of every namespace and interface name this network made. */
  prefix: string;
  /** The /24 in use, e.g. `198.18.77.0/24`. */
  subnet: string;
  hosts: Record<string, NetHost>;
  /** The root namespace's address on the bridge. */
  bridgeAddress: string;
  /** Spawns `cmd args` inside the host's namespace (through `ip netns exec`). */
  exec(host: string, cmd: string, args?: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Takes the host's link down (the bridge side): a partition, packets are dropped and connections time out. */
  cut(host: string): Promise<void>;
  /** Brings the host's link back up. */
  heal(host: string): Promise<void>;
  /** Kills what still runs inside, removes the namespaces, veths and bridge. Safe to call twice or after a failure. */
  destroy(): Promise<void>;
}

export function ipBinary(): string {
  for (const p of ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip']) if (existsSync(p)) return p;
  throw new NetnsError('`ip` is not installed: run `npm test` (it installs the Debian package iproute2) or apt-get install iproute2');
}

/** Runs ip; `input` feeds `ip -batch -`. */
async function ip(args: readonly string[], input?: string): Promise<string> {
  try {
    const p = run(ipBinary(), args as string[], { timeout: 10_000 });
    if (input !== undefined) p.child.stdin!.end(input);
    return (await p).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new NetnsError(`ip ${args.join(' ')} failed: ${(err.stderr || err.message).trim()}`);
  }
}

// Networks not yet destroyed, for the process-exit fallback.
const live = new Map<string, () => void>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: a best-effort teardown if a test file ends without destroy().
  process.on('exit', () => {
    for (const cleanup of live.values()) cleanup();
  });
}

const HOST_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/i;

/** A /24 inside 198.18.0.0/15 that no interface in the root namespace uses yet. */
async function pickSubnet(): Promise<[number, number]> {
  const used = await ip(['-o', '-4', 'addr', 'show']);
  for (let attempt = 0; attempt < 64; attempt++) {
    const b = 18 + randomInt(2);
    const c = randomInt(256);
    if (!used.includes(` 198.${b}.${c}.`)) return [b, c];
  }
  throw new NetnsError('no free /24 left in 198.18.0.0/15 (stale test networks? see `ip -4 addr`)');
}

async function pickPrefix(): Promise<string> {
  const [nsList, links] = await Promise.all([ip(['netns', 'list']), ip(['-o', 'link', 'show'])]);
  for (let attempt = 0; attempt < 64; attempt++) {
    const prefix = `bk${randomBytes(2).toString('hex')}`;
    if (!nsList.includes(prefix) && !links.includes(prefix)) return prefix;
  }
  throw new NetnsError('could not find an unused namespace prefix');
}

/** Another test file took the same names or /24 at the same moment: retry with new random ones. */
class Clash extends NetnsError {}

export async function createNetwork(hostNames: readonly string[], opts: { prefix?: string } = {}): Promise<Network> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createNetworkOnce(hostNames, opts);
    } catch (e) {
      if (!(e instanceof Clash) || attempt >= 5) throw e;
    }
  }
}

async function createNetworkOnce(hostNames: readonly string[], opts: { prefix?: string }): Promise<Network> {
  ipBinary();
  if (hostNames.length === 0) throw new NetnsError('createNetwork needs at least one host');
  if (hostNames.length > 250) throw new NetnsError('createNetwork: at most 250 hosts fit a /24');
  for (const h of hostNames) if (!HOST_NAME.test(h)) throw new NetnsError(`bad host name ${JSON.stringify(h)}: use [a-z0-9_-], at most 32 chars`);
  if (new Set(hostNames).size !== hostNames.length) throw new NetnsError(`duplicate host names in ${hostNames.join(', ')}`);
  // Interface names are limited to 15 characters (IFNAMSIZ - 1): the prefix plus `-br` / `-h250` must fit.
  const prefix = opts.prefix ?? (await pickPrefix());
  if (!/^[a-z0-9]{1,10}$/i.test(prefix)) throw new NetnsError(`bad prefix ${JSON.stringify(prefix)}: [a-z0-9], at most 10 chars`);

  const [b, c] = await pickSubnet();
  const net24 = `198.${b}.${c}`;
  const bridge = `${prefix}-br`;
  const hosts: Record<string, NetHost> = {};
  const outer: Record<string, string> = {}; // host -> the veth end on the bridge (root namespace)
  hostNames.forEach((h, i) => {
    hosts[h] = { ns: `${prefix}-${h}`, address: `${net24}.${i + 2}` };
    outer[h] = `${prefix}-h${i + 1}`;
  });

  let destroyed = false;
  const nsNames = () => Object.values(hosts).map((h) => h.ns);

  const destroySync = (): void => {
    const bin = ipBinary();
    const quiet = (args: string[]): string => {
      try {
        return execFileSync(bin, args, { stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).toString();
      } catch {
        return '';
      }
    };
    for (const ns of nsNames()) killInside(quiet(['netns', 'pids', ns]));
    for (const dev of Object.values(outer)) quiet(['link', 'del', dev]);
    quiet(['link', 'del', bridge]);
    for (const ns of nsNames()) quiet(['netns', 'delete', ns]);
  };

  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    live.delete(prefix);
    // A namespace lives on while a process is inside (and its veth with it): kill those first.
    for (const ns of nsNames()) {
      const pids = await ip(['netns', 'pids', ns]).catch(() => '');
      if (killInside(pids)) await waitGone(pids);
    }
    const leftovers: string[] = [];
    const remove = async (args: string[], what: string, exists: () => Promise<boolean>) => {
      await ip(args).catch(async (e: Error) => {
        if (await exists()) leftovers.push(`${what}: ${e.message}`);
      });
    };
    const linkExists = (dev: string) => () => ip(['link', 'show', dev]).then(() => true, () => false);
    // Deleting one end of a veth pair deletes both.
    for (const dev of Object.values(outer)) await remove(['link', 'del', dev], dev, linkExists(dev));
    await remove(['link', 'del', bridge], bridge, linkExists(bridge));
    for (const ns of nsNames()) {
      await remove(['netns', 'delete', ns], ns, async () => (await ip(['netns', 'list']).catch(() => '')).split('\n').some((l) => l.split(' ')[0] === ns));
    }
    if (leftovers.length > 0) throw new NetnsError(`test network ${prefix} not fully removed:\n${leftovers.join('\n')}`);
  };

  installExitHook();
  live.set(prefix, destroySync);

  try {
    // A fixed MAC: otherwise the bridge takes its ports' lowest MAC, which changes as ports come and go.
    const bridgeMac = ['02', ...randomBytes(5).toString('hex').match(/../g)!].join(':');
    await ip(['link', 'add', bridge, 'address', bridgeMac, 'type', 'bridge']).catch((e: Error) => {
      if (/File exists/.test(e.message) && !opts.prefix) throw new Clash(e.message);
      throw new NetnsError(
        `${e.message}\n(test networks need root or CAP_NET_ADMIN + CAP_SYS_ADMIN; running as uid ${process.getuid?.()})`,
      );
    });
    await ip(['link', 'set', bridge, 'addrgenmode', 'none']);
    await ip(['addr', 'add', `${net24}.1/24`, 'dev', bridge]);
    const sameNet = (await ip(['-o', '-4', 'addr', 'show'])).split('\n').filter((l) => l.includes(` ${net24}.`));
    if (sameNet.some((l) => !l.includes(` ${bridge} `))) throw new Clash(`${net24}.0/24 is taken meanwhile`);
    await ip(['link', 'set', bridge, 'up']);
    for (const h of hostNames) {
      const { ns, address } = hosts[h]!;
      await ip(['netns', 'add', ns]).catch((e: Error) => {
        throw new NetnsError(`${e.message}\n(ip netns add needs root: it mounts the namespace under /run/netns)`);
      });
      // Create the inner end directly inside the namespace, so it can be called eth0 there.
      await ip(['link', 'add', outer[h]!, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await ip(['link', 'set', outer[h]!, 'addrgenmode', 'none']);
      await ip(['link', 'set', outer[h]!, 'master', bridge]);
      await ip(['link', 'set', outer[h]!, 'up']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'addrgenmode', 'none']);
      await ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    // Permanent neighbour entries everywhere: no ARP, so a cut host behaves as across a real partition (packets
    // vanish, connects time out) instead of failing fast with EHOSTUNREACH once ARP gives up (~3 s), and the
    // carrier loss of cut() does not flush them.
    const macs: Record<string, string> = {};
    for (const h of hostNames) {
      const [link] = JSON.parse(await ip(['-n', hosts[h]!.ns, '-j', 'link', 'show', 'eth0'])) as [{ address: string }];
      macs[h] = link.address;
    }
    const neigh = (address: string, mac: string, dev: string) => `neigh replace ${address} lladdr ${mac} dev ${dev} nud permanent\n`;
    for (const h of hostNames) {
      const lines = [neigh(`${net24}.1`, bridgeMac, 'eth0')];
      for (const o of hostNames) if (o !== h) lines.push(neigh(hosts[o]!.address, macs[o]!, 'eth0'));
      await ip(['-n', hosts[h]!.ns, '-batch', '-'], lines.join(''));
    }
    await ip(['-batch', '-'], hostNames.map((h) => neigh(hosts[h]!.address, macs[h]!, bridge)).join(''));
  } catch (e) {
    await destroy().catch(() => undefined);
    throw e;
  }

  const hostOf = (h: string): NetHost => {
    const host = hosts[h];
    if (!host) throw new NetnsError(`no host ${JSON.stringify(h)} in test network ${prefix} (hosts: ${hostNames.join(', ')})`);
    if (destroyed) throw new NetnsError(`test network ${prefix} is destroyed`);
    return host;
  };

  return {
    prefix,
    subnet: `${net24}.0/24`,
    hosts,
    bridgeAddress: `${net24}.1`,
    exec(h, cmd, args = [], opts = {}) {
      return spawn(ipBinary(), ['netns', 'exec', hostOf(h).ns, cmd, ...args], opts);
    },
    async cut(h) {
      hostOf(h);
      // The bridge side goes down: the host keeps its address and routes, its packets just vanish (no RST, no
      // ICMP), as with a pulled cable or a dead switch port.
      await ip(['link', 'set', outer[h]!, 'down']);
    },
    async heal(h) {
      const { ns } = hostOf(h);
      await ip(['link', 'set', outer[h]!, 'up']);
      // Return once the inner end has carrier again, so the next packet goes through.
      const deadline = Date.now() + 5_000;
      while (!(await ip(['-n', ns, '-o', 'link', 'show', 'eth0'])).includes('LOWER_UP')) {
        if (Date.now() > deadline) throw new NetnsError(`eth0 in ${ns} did not come back up`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    destroy,
  };
}

/** SIGKILLs the pids listed (one a line); true if there were any. */
function killInside(pids: string): boolean {
  let any = false;
  for (const line of pids.split('\n')) {
    const pid = Number(line.trim());
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    try {
      process.kill(pid, 'SIGKILL');
      any = true;
    } catch {
      // already gone
    }
  }
  return any;
}

/** Alive and not a zombie (an exited process whose parent has not reaped it holds no namespace). */
function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function waitGone(pids: string): Promise<void> {
  const list = pids.split('\n').map((l) => Number(l.trim())).filter((p) => Number.isInteger(p) && p > 1);
  const deadline = Date.now() + 5_000;
  while (list.some(processAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}
