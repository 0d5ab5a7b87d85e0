/** Workflow inputs and results: names, ids and numbers only, never secrets or data. */

export interface TargetRef {
  target: string;
  kind: string;
}

export interface BackupInput {
  /** Targets to back up; all configured targets when omitted. */
  targets?: string[];
  /** Chosen by the caller for a readable workflow id; generated when omitted. */
  backupId?: string;
  /** How long to wait while a restore of a target runs (default 3600). */
  lockWaitSeconds?: number;
}

export interface TargetBackupResult {
  target: string;
  kind: string;
  artifacts: number;
  bytes: number;
  seconds: number;
  manifest: string;
}

export interface BackupResult {
  backupId: string;
  targets: TargetBackupResult[];
}

export interface RestoreInput {
  backupId: string;
  /** Targets to restore; every target the backup has when omitted. */
  targets?: string[];
  /** Restore only these items (by name) of a target: `{ "app-pg": ["app"] }`; all when omitted. */
  only?: Record<string, string[]>;
  /** Bucket targets: restore only objects under a sub-prefix, e.g. one tenant: `{ "bundles": "tenant-a/" }`. */
  subPrefix?: Record<string, string>;
  /** Restore under other names: `{ "app-pg": { "app": "app_copy" } }`. */
  into?: Record<string, Record<string, string>>;
  /** Proceed without waiting for an `approve` signal. */
  yes?: boolean;
  /** How long to wait for approval before cancelling cleanly (default 1 hour). */
  approvalTimeoutSeconds?: number;
  /** Plan only: say what would be stopped, dropped and restored, change nothing. */
  dryRun?: boolean;
}

export interface PlannedArtifact {
  file: string;
  item: string;
  name: string;
  into: string;
  bytes: number;
}

export interface TargetPlan {
  target: string;
  kind: string;
  serverVersion: string;
  /** Only objects under this sub-prefix are restored (bucket targets). */
  subPrefix?: string;
  artifacts: PlannedArtifact[];
  bytes: number;
}

export interface RestorePlan {
  backupId: string;
  targets: TargetPlan[];
  bytes: number;
}

export interface TargetRestoreResult {
  target: string;
  kind: string;
  restored: Array<{ name: string; into: string }>;
  bytes: number;
  seconds: number;
}

export interface RestoreResult {
  backupId: string;
  /** What was (or, with dryRun, would be) done. */
  plan: RestorePlan;
  dryRun: boolean;
  targets: TargetRestoreResult[];
  /** Writer hooks, post-restore hooks and checks that ran, per target. */
  steps: string[];
}

export type DrillMode = 'scratch' | 'in-place';

export interface DrillInput {
  targets?: string[];
  /** `scratch` (default) restores under a temporary name; `in-place` drops and restores the real one. */
  mode?: DrillMode;
}

export interface DrillStoreResult {
  target: string;
  kind: string;
  markers: { expected: number; found: number; missing: number[]; unexpected: number };
  backupSeconds: number;
  restoreSeconds: number;
  artifactBytes: number;
}

export interface DrillResult {
  ok: boolean;
  nonce: string;
  mode: DrillMode;
  backupId: string;
  stores: DrillStoreResult[];
  failures: string[];
}

/** A drill's result as kept in the repository (`drills/<id>.json`) for `lifeboat report`. */
export interface DrillRecord extends DrillResult {
  workflowId: string;
  startedAt: string;
  finishedAt: string;
}

/** What the `progress` query of every workflow answers. */
export interface ProgressState {
  stage: string;
  detail?: string;
  bytesDone?: number;
  bytesTotal?: number;
  startedAt: string;
}

export interface VerifyInput {
  backupId: string;
  targets?: string[];
}

export interface ArtifactVerification {
  file: string;
  ok: boolean;
  bytes: number;
  /** e.g. the `pg_restore --list` summary. */
  detail?: string;
  error?: { type: string; message: string };
}

/** Stored next to the backup as `verification.json`; `lifeboat ls` shows it. */
export interface TargetVerification {
  backupId: string;
  target: string;
  kind: string;
  verifiedAt: string;
  ok: boolean;
  artifacts: ArtifactVerification[];
}

export interface VerifyResult {
  ok: boolean;
  backupId: string;
  targets: TargetVerification[];
}

export interface PruneInput {
  targets?: string[];
  /** Say what would be deleted, delete nothing. */
  dryRun?: boolean;
}

export interface TargetPrunePlan {
  target: string;
  decisions: Array<{ backupId: string; keep: boolean; reasons: string[] }>;
  /** Backup folders without a manifest (interrupted backups) older than a day. */
  incomplete: string[];
}

export interface TargetPruneResult {
  target: string;
  kept: Array<{ backupId: string; reasons: string[] }>;
  /** Deleted, or with dryRun, would be deleted. */
  deleted: string[];
  /** Skipped because an Object Lock retention still protects them. */
  locked: Array<{ backupId: string; until: string }>;
  incomplete: string[];
  /** Stored objects no backup references any more, deleted (bucket targets). */
  garbageDeleted: number;
}

export interface PruneResult {
  dryRun: boolean;
  targets: TargetPruneResult[];
}
