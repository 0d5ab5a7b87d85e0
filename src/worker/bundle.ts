import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

/**
 * Workflow code reaches a worker as one webpack bundle. Bundling at every
 * start costs seconds of CPU and memory the worker keeps (ready at ~252 MB
 * RSS when it bundled, ~220 MB loading the file), so `npm run build` writes the bundle once,
 * next to the compiled code (dist/workflow-bundle.js), and workers load it.
 *
 * Where the bundle comes from, first match wins:
 * - LIFEBOAT_WORKFLOW_BUNDLE: a bundle file (the tests point it at dist's);
 * - dist/workflow-bundle.js when this module runs from dist;
 * - otherwise the workflows are bundled in process (running from source).
 */
export const BUNDLE_FILE = 'workflow-bundle.js';

export type WorkflowCodeOption = { workflowBundle: { codePath: string } } | { workflowsPath: string };

export function workflowCode(): WorkflowCodeOption {
  const fromEnv = process.env.LIFEBOAT_WORKFLOW_BUNDLE;
  if (fromEnv) {
    if (!existsSync(fromEnv)) {
      throw new Error(`LIFEBOAT_WORKFLOW_BUNDLE names ${fromEnv}, which does not exist: run \`npm run build\` or unset it`);
    }
    return { workflowBundle: { codePath: path.resolve(fromEnv) } };
  }
  const built = path.join(__dirname, '..', BUNDLE_FILE);
  if (existsSync(built)) return { workflowBundle: { codePath: built } };
  return { workflowsPath: require.resolve('../workflows') };
}

/** Writes the bundle of lifeboat's workflows to `out` (the build's last step). */
export async function writeWorkflowBundle(out: string): Promise<void> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    // Bundling speaks only on failure; the build's output stays quiet.
    logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} },
  });
  writeFileSync(out, code);
}

if (require.main === module) {
  const out = path.join(__dirname, '..', BUNDLE_FILE);
  writeWorkflowBundle(out).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
