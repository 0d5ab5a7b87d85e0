/** Workflow inputs and results: names, ids and numbers only, never secrets or data. */

export interface TargetRef {
  target: string;
  kind: string;
  /** The task queue of the worker beside the target's store; the workflow's own when omitted. */
  taskQueue?: string;
  /** temporal.heartbeatTimeoutSeconds: how soon a dead worker's activity is retried (30 s when omitted). */
  heartbeatTimeoutSeconds?: number;
}

/** describeRun's answer: the targets of a run and what the workflows need of the config. */
export interface RunInfo {
  targets: TargetRef[];
  idPrefix: string;
  searchAttributes: boolean;
}

/** What the workflows know of the config beside the targets: the prefix that keeps two deployments' ids apart. */
export interface Deployment {
  /** `schedules.idPrefix`: lock ids are `lock/<idPrefix>/<target>`. */
  idPrefix: string;
}

export type HookPhase = 'stopWriters' | 'startWriters' | 'postRestore';

/** One configured hook as the workflow sees it: no command line, no secrets. */
export interface HookInfo {
  phase: HookPhase;
  index: number;
  /** The argv joined, or method and URL, for messages. */
  name: string;
  timeoutSeconds: number;
  retries: number;
}

/**
 * What a hook is told about the run (as LIFEBOAT_* environment variables, or
 * the JSON body of an HTTP hook): docs/hooks.md.
 */
export interface HookContext {
  operation: 'restore' | 'drill';
  /** `in-place`: the target's own data is replaced. */
  mode: 'in-place';
  backupId: string;
  workflowId: string;
  /** Items restored, and the names they were restored into. */
  items: Array<{ item: string; name: string; into: string }>;
  /** startWriters only: how the restore ended (success, failed, cancelled). */
  outcome?: string;
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
  /** Drop each item before restoring it (the in-place drill's "drop, then restore"), after writers stopped and artifacts were verified. */
  dropFirst?: boolean;
  /** Run the target's SQL checks against the copies restored under other names (the scratch drill), instead of skipping them. */
  checkCopies?: boolean;
  /** Who or what asked for the restore, for hooks and the history (`drill`, default `restore`). */
  operation?: 'restore' | 'drill';
  /** The role that owns the restored databases and objects (postgres), overriding the target's `owner`. */
  owner?: string;
  /** Accept manifests without a signature (backups from before signing was configured). */
  allowUnsigned?: boolean;
}

export interface PlannedArtifact {
  file: string;
  item: string;
  name: string;
  into: string;
  bytes: number;
  /**
   * Restored into a new name by a store that then drops nothing, from an
   * artifact with a block list: each block is authenticated as it streams,
   * so the restore skips the verify pass that otherwise comes first.
   */
  streamed?: true;
}

export interface TargetPlan {
  target: string;
  kind: string;
  /** in-place: some item is restored over the target's own data (writers are stopped, hooks and checks run); copy: every item goes under another name, nothing of the target is touched. */
  mode: 'in-place' | 'copy';
  serverVersion: string;
  /** Said by the store before anything changes, e.g. that a Vault restore replaces every secret. */
  notice?: string;
  /** The store requires an explicit approve signal, whatever `yes` says. */
  approvalRequired?: boolean;
  /** Dry runs of stores that can tell (a bucket): exactly which keys would be written and deleted. */
  preview?: string[];
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
  /** Who approved it: `--yes`, or the `by` of the approve signal. */
  approvedBy?: string;
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
  /** How this target was drilled: a Vault target is drilled on a scratch copy even in an in-place drill. */
  mode?: DrillMode;
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
  /** Over the last half minute, from what running activities report. */
  bytesPerSecond?: number;
  etaSeconds?: number;
  startedAt: string;
}

/** What a running activity reports to its workflow (the `activityProgress` signal). */
export interface ActivityProgress {
  /** The item, as the workflow names it: `<target>/<item or file>`. */
  key: string;
  stage?: string;
  bytes?: number;
  totalBytes?: number;
}

export interface VerifyInput {
  backupId: string;
  targets?: string[];
  /** Accept manifests without a signature (backups from before signing was configured). */
  allowUnsigned?: boolean;
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
  /** Count unsigned backups in the retention policy (backups from before signing was configured). */
  allowUnsigned?: boolean;
  /** Say what would be deleted, delete nothing. */
  dryRun?: boolean;
}

export interface TargetPrunePlan {
  target: string;
  decisions: Array<{ backupId: string; keep: boolean; reasons: string[] }>;
  /** Backup folders without a manifest (interrupted backups) older than a day. */
  incomplete: string[];
  /** Backups whose manifest does not read or is not authentic: reported, not counted, not deleted. */
  damaged: Array<{ backupId: string; why: string }>;
}

export interface TargetPruneResult {
  target: string;
  kept: Array<{ backupId: string; reasons: string[] }>;
  /** Deleted, or with dryRun, would be deleted. */
  deleted: string[];
  /** Skipped because an Object Lock retention still protects them. */
  locked: Array<{ backupId: string; until: string }>;
  incomplete: string[];
  /** Backups whose manifest does not read or is not authentic: left alone, for a person to look at. */
  damaged: Array<{ backupId: string; why: string }>;
  /** Stored objects no backup references any more, deleted (bucket targets). */
  garbageDeleted: number;
}

export interface PruneResult {
  dryRun: boolean;
  targets: TargetPruneResult[];
}
