export { backupWorkflow } from './backup';
export { restoreWorkflow, approveSignal } from './restore';
export { drillWorkflow } from './drill';
export { progressQuery } from './progress';
export { verifyWorkflow } from './verify';
export { pruneWorkflow } from './prune';
export { targetLockWorkflow } from './lock';
