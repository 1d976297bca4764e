/**
 * The verifier store's schema, as numbered migrations for SQLite and PostgreSQL. A database records the versions
 * applied in `schema_migrations`; `biokiosk verifier migrate` applies what is missing, and a node refuses to start
 * on a database that is behind this build (or ahead of it: written by a newer build). The embedded SQLite store
 * migrates itself when opened (it has one owner); PostgreSQL, shared by a fleet, is migrated on purpose.
 *
 * To change the schema, append a migration; never edit one that has shipped.
 */
export interface Migration {
  version: number;
  name: string;
  sqlite: string;
  postgres: string;
}

const SQLITE_APPEND_ONLY = ['audit_leaves', 'audit_nodes', 'audit_checkpoints']
  .flatMap((t) => ['UPDATE', 'DELETE'].map((op) => `CREATE TRIGGER IF NOT EXISTS ${t}_no_${op.toLowerCase()} BEFORE ${op} ON ${t} BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;`))
  .join('\n');

const PG_APPEND_ONLY = ['audit_leaves', 'audit_nodes', 'audit_checkpoints']
  .map(
    (t) => `CREATE TRIGGER ${t}_append_only BEFORE UPDATE OR DELETE ON ${t} FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER ${t}_no_truncate BEFORE TRUNCATE ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();`,
  )
  .join('\n');

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'registry, replay windows, nonces, gallery, rejections, audit log with checkpoints and cosignatures',
    sqlite: `
      CREATE TABLE IF NOT EXISTS devices (
        ueid TEXT PRIMARY KEY, kid TEXT NOT NULL UNIQUE, jwk TEXT NOT NULL, site TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'revoked')), registered_at INTEGER NOT NULL, revoked_at INTEGER);
      CREATE TABLE IF NOT EXISTS seq_windows (ueid TEXT PRIMARY KEY, floor INTEGER NOT NULL, seen TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS nonces (ueid TEXT NOT NULL, nonce TEXT NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER,
        PRIMARY KEY (ueid, nonce));
      CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expires_at);
      CREATE TABLE IF NOT EXISTS gallery (subject TEXT NOT NULL, modality TEXT NOT NULL, template BLOB NOT NULL,
        template_format TEXT NOT NULL, model_sha256 TEXT NOT NULL, enrolled_at INTEGER NOT NULL, PRIMARY KEY (subject, modality));
      CREATE TABLE IF NOT EXISTS rejection_samples (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, ueid TEXT NOT NULL, code TEXT NOT NULL,
        detail TEXT NOT NULL, bytes INTEGER NOT NULL, hash TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS rejection_samples_at ON rejection_samples (at);
      CREATE TABLE IF NOT EXISTS rejection_counts (hour INTEGER NOT NULL, code TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (hour, code)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS audit_leaves (idx INTEGER PRIMARY KEY, record_key TEXT NOT NULL UNIQUE, leaf_hash BLOB NOT NULL,
        record BLOB NOT NULL, salt BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS audit_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS audit_frontier (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL, roots BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS audit_checkpoints (tree_size INTEGER PRIMARY KEY, root_hash BLOB NOT NULL, timestamp INTEGER NOT NULL, note TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS audit_cosignatures (tree_size INTEGER NOT NULL, witness TEXT NOT NULL, line TEXT NOT NULL,
        received_at INTEGER NOT NULL, PRIMARY KEY (tree_size, witness)) WITHOUT ROWID;
      ${SQLITE_APPEND_ONLY}
    `,
    postgres: `
      CREATE TABLE devices (
        ueid TEXT PRIMARY KEY, kid TEXT NOT NULL UNIQUE, jwk TEXT NOT NULL, site TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'revoked')), registered_at BIGINT NOT NULL, revoked_at BIGINT);
      CREATE TABLE seq_windows (ueid TEXT PRIMARY KEY, floor BIGINT NOT NULL, seen TEXT NOT NULL);
      CREATE TABLE nonces (ueid TEXT NOT NULL, nonce TEXT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT, PRIMARY KEY (ueid, nonce));
      CREATE INDEX nonces_expiry ON nonces (expires_at);
      CREATE TABLE gallery (subject TEXT NOT NULL, modality TEXT NOT NULL, template BYTEA NOT NULL,
        template_format TEXT NOT NULL, model_sha256 TEXT NOT NULL, enrolled_at BIGINT NOT NULL, PRIMARY KEY (subject, modality));
      CREATE TABLE rejection_samples (id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, ueid TEXT NOT NULL, code TEXT NOT NULL,
        detail TEXT NOT NULL, bytes INTEGER NOT NULL, hash TEXT NOT NULL);
      CREATE INDEX rejection_samples_at ON rejection_samples (at);
      CREATE TABLE rejection_counts (hour BIGINT NOT NULL, code TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (hour, code));
      CREATE TABLE audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE audit_leaves (idx BIGINT PRIMARY KEY, record_key TEXT NOT NULL UNIQUE, leaf_hash BYTEA NOT NULL,
        record BYTEA NOT NULL, salt BYTEA NOT NULL);
      CREATE TABLE audit_nodes (level SMALLINT NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (level, idx));
      CREATE TABLE audit_frontier (id SMALLINT PRIMARY KEY CHECK (id = 1), size BIGINT NOT NULL, roots BYTEA NOT NULL);
      CREATE TABLE audit_checkpoints (tree_size BIGINT PRIMARY KEY, root_hash BYTEA NOT NULL, timestamp BIGINT NOT NULL, note TEXT NOT NULL);
      CREATE TABLE audit_cosignatures (tree_size BIGINT NOT NULL, witness TEXT NOT NULL, line TEXT NOT NULL,
        received_at BIGINT NOT NULL, PRIMARY KEY (tree_size, witness));
      CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
      ${PG_APPEND_ONLY}
    `,
  },
  {
    version: 2,
    name: 'the registry: enrolment tokens (hashed), pending enrolments and rotations, device identities',
    sqlite: `
      CREATE TABLE enrollment_tokens (hash TEXT PRIMARY KEY, site TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        used_at INTEGER, used_by TEXT);
      CREATE TABLE enrollments (id TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('enroll', 'rotate')), token_hash TEXT, ueid TEXT,
        site TEXT NOT NULL, request TEXT NOT NULL, credential BLOB, nonce BLOB NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
      CREATE INDEX enrollments_expiry ON enrollments (expires_at);
      CREATE TABLE device_identities (ueid TEXT PRIMARY KEY, evidence TEXT NOT NULL CHECK (evidence IN ('tpm', 'development')),
        ek_cert_sha256 TEXT, identity_key_name BLOB, site TEXT NOT NULL, enrolled_at INTEGER NOT NULL, rotated_at INTEGER, decommissioned_at INTEGER);
    `,
    postgres: `
      CREATE TABLE enrollment_tokens (hash TEXT PRIMARY KEY, site TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
        used_at BIGINT, used_by TEXT);
      CREATE TABLE enrollments (id TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('enroll', 'rotate')), token_hash TEXT, ueid TEXT,
        site TEXT NOT NULL, request TEXT NOT NULL, credential BYTEA, nonce BYTEA NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL);
      CREATE INDEX enrollments_expiry ON enrollments (expires_at);
      CREATE TABLE device_identities (ueid TEXT PRIMARY KEY, evidence TEXT NOT NULL CHECK (evidence IN ('tpm', 'development')),
        ek_cert_sha256 TEXT, identity_key_name BYTEA, site TEXT NOT NULL, enrolled_at BIGINT NOT NULL, rotated_at BIGINT, decommissioned_at BIGINT);
    `,
  },
  {
    version: 3,
    name: 'decisions from several dimensions: attempts per identity and device (behaviour), pending step-ups, device key stores',
    sqlite: `
      ALTER TABLE devices ADD COLUMN key_store TEXT NOT NULL DEFAULT 'unknown' CHECK (key_store IN ('tpm', 'software', 'unknown'));
      CREATE TABLE IF NOT EXISTS attempts (id INTEGER PRIMARY KEY, subject TEXT NOT NULL, ueid TEXT NOT NULL, site TEXT,
        at INTEGER NOT NULL, failed INTEGER NOT NULL, outcome TEXT NOT NULL);
      CREATE INDEX IF NOT EXISTS attempts_subject ON attempts (subject, at);
      CREATE INDEX IF NOT EXISTS attempts_ueid ON attempts (ueid, at);
      CREATE INDEX IF NOT EXISTS attempts_at ON attempts (at);
      CREATE TABLE IF NOT EXISTS step_ups (att_id TEXT PRIMARY KEY, subject TEXT NOT NULL, ueid TEXT NOT NULL, scenario TEXT NOT NULL,
        done TEXT NOT NULL, need INTEGER NOT NULL, expires_at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS step_ups_expiry ON step_ups (expires_at);
    `,
    postgres: `
      ALTER TABLE devices ADD COLUMN key_store TEXT NOT NULL DEFAULT 'unknown' CHECK (key_store IN ('tpm', 'software', 'unknown'));
      CREATE TABLE attempts (id BIGSERIAL PRIMARY KEY, subject TEXT NOT NULL, ueid TEXT NOT NULL, site TEXT,
        at BIGINT NOT NULL, failed BOOLEAN NOT NULL, outcome TEXT NOT NULL);
      CREATE INDEX attempts_subject ON attempts (subject, at);
      CREATE INDEX attempts_ueid ON attempts (ueid, at);
      CREATE INDEX attempts_at ON attempts (at);
      CREATE TABLE step_ups (att_id TEXT PRIMARY KEY, subject TEXT NOT NULL, ueid TEXT NOT NULL, scenario TEXT NOT NULL,
        done TEXT NOT NULL, need INTEGER NOT NULL, expires_at BIGINT NOT NULL);
      CREATE INDEX step_ups_expiry ON step_ups (expires_at);
    `,
  },
  {
    version: 4,
    name: 'kiosks quarantined at the broker for flooding the stream, with their strikes',
    sqlite: `
      CREATE TABLE IF NOT EXISTS quarantines (ueid TEXT PRIMARY KEY, strikes INTEGER NOT NULL, since INTEGER NOT NULL, until INTEGER NOT NULL,
        reason TEXT NOT NULL, released_at INTEGER);
      CREATE INDEX IF NOT EXISTS quarantines_until ON quarantines (until) WHERE released_at IS NULL;
    `,
    postgres: `
      CREATE TABLE quarantines (ueid TEXT PRIMARY KEY, strikes INTEGER NOT NULL, since BIGINT NOT NULL, until BIGINT NOT NULL,
        reason TEXT NOT NULL, released_at BIGINT);
      CREATE INDEX quarantines_until ON quarantines (until) WHERE released_at IS NULL;
    `,
  },
];

export const LATEST_SCHEMA = MIGRATIONS[MIGRATIONS.length - 1]!.version;

export const SCHEMA_MIGRATIONS_SQLITE = 'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)';
export const SCHEMA_MIGRATIONS_PG = 'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)';

/** The migrations a database at `current` still needs. */
export function pending(current: number): Migration[] {
  return MIGRATIONS.filter((m) => m.version > current);
}
