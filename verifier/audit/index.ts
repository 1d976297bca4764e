/**
 * The verifier's audit log (RFC 9162 Merkle tree of salted commitments to decision records, C2SP checkpoints):
 * log.ts appends and proves, store.ts and pg-store.ts store, verify.ts audits, protocol/receipt.ts checks one
 * receipt, protocol/merkle.ts hashes, protocol/note.ts signs.
 */
export { canonicalBytes, canonicalJson, isCanonicalJson } from '../../protocol/canonical.ts';
export { appendBatch, AuditProofs, entryLeafHash, logKeysChange, SALT_BYTES, SubtreeMemory, type AppendedLeaf, type AppendOutcome, type AuditEntry, type LogKeysRecord, type ProofJob } from './log.ts';
export * as merkle from '../../protocol/merkle.ts';
export { SqliteAuditStore, type AuditReader, type AuditWriter, type CheckpointRow, type Frontier, type LeafAppend, type LeafRow, type NodeRow } from './store.ts';
export { PgAuditStore } from './pg-store.ts';
export { checkReceiptProof, entryCommitment, leafCommitment, type LogTrust, type ReceiptProofCheck } from '../../protocol/receipt.ts';
export { auditLog, formatAuditReport, type AuditOptions, type AuditProblem, type AuditProblemKind, type AuditReport, type AuditTrust } from './verify.ts';
