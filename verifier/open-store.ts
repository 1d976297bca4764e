/**
 * Opens the store a location names: `postgres://` (or `postgresql://`) URLs are the fleet's PostgreSQL; anything
 * else is the path of the embedded SQLite file. Migrations likewise.
 */
import type { NoticeSink } from '../protocol/private-files.ts';
import { migratePostgres, PgVerifierStore } from './pg-store.ts';
import { migrateSqliteFile, SqliteVerifierStore } from './sqlite-store.ts';
import type { VerifierStore } from './store.ts';

export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//i.test(location);
}

export async function openStore(location: string, options: { galleryKey: Uint8Array; onNotice?: NoticeSink; migrate?: boolean }): Promise<VerifierStore> {
  if (isPostgresUrl(location)) return PgVerifierStore.open(location, { galleryKey: options.galleryKey });
  return new SqliteVerifierStore(location, { galleryKey: options.galleryKey, onNotice: options.onNotice, migrate: options.migrate });
}

/** Brings the store at `location` to this build's schema; says from which version and what it applied. */
export async function migrateStore(location: string, onNotice?: NoticeSink): Promise<{ from: number; applied: number[] }> {
  if (isPostgresUrl(location)) return migratePostgres(location);
  return migrateSqliteFile(location, onNotice);
}
