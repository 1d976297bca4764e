/**
 * The verifier's audit log (RFC 9162-style Merkle tree of decision records): see log.ts for the log, store.ts for
 * storage, verify.ts for `biokiosk verifier audit` and receipt checks, merkle.ts for the hashing and proofs.
 */
export { canonicalBytes, canonicalJson, isCanonicalJson } from '../../protocol/canonical.ts';
export { AuditLog, storeSubtreeHash, toSignedTreeHead, type AppendResult, type AuditEntry, type AuditLogOptions, type AuditReceipt, type SealedTreeHead } from './log.ts';
export * as merkle from '../../protocol/merkle.ts';
export { SqliteAuditStore, type AuditStore, type LeafAppend, type LeafRow, type NodeRow, type SqliteAuditStoreOptions, type TreeHeadRow } from './store.ts';
export {
  p256TreeHeadSigner,
  p256TreeHeadVerifier,
  treeHeadSignerFrom,
  treeHeadSigningInput,
  type SignedTreeHead,
  type TreeHead,
  type TreeHeadSign,
  type TreeHeadVerify,
} from '../../protocol/tree-head.ts';
export { auditLog, formatAuditReport, verifyReceipt, type AuditOptions, type AuditProblem, type AuditProblemKind, type AuditReport, type ReceiptCheck, type ReceiptInput } from './verify.ts';
