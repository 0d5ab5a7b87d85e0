import type { WorkflowHandle } from '@temporalio/client';
import type { ProgressState } from '../domain/plan';
import { bytes } from './output';

/**
 * Follows a run's `progress` query while the CLI waits: a live line on a
 * terminal, JSON lines with --json (on stderr, so stdout stays one document),
 * and one line per stage otherwise.
 */
export function followProgress(handle: WorkflowHandle, json: boolean): () => void {
  const tty = process.stderr.isTTY === true && !json;
  let last = '';
  let firstBytes: { at: number; done: number } | undefined;
  let stopped = false;

  const render = (p: ProgressState): void => {
    if (json) {
      const line = JSON.stringify({ progress: p });
      if (line !== last) process.stderr.write(`${line}\n`);
      last = line;
      return;
    }
    const parts = [p.stage, p.detail].filter(Boolean);
    if (p.bytesTotal) {
      const done = p.bytesDone ?? 0;
      if (!firstBytes && done > 0) firstBytes = { at: Date.now(), done };
      parts.push(`${bytes(done)} / ${bytes(p.bytesTotal)} (${Math.floor((100 * done) / p.bytesTotal)}%)`);
      const eta = firstBytes && done > firstBytes.done ? ((p.bytesTotal - done) * (Date.now() - firstBytes.at)) / (done - firstBytes.done) / 1000 : undefined;
      if (eta !== undefined) parts.push(`ETA ${Math.ceil(eta)}s`);
    }
    const line = parts.join('  ');
    if (tty) process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 100) - 1)}`);
    else if (p.stage !== last) process.stderr.write(`  ${line}\n`);
    last = tty ? line : p.stage;
  };

  const poll = async (): Promise<void> => {
    while (!stopped) {
      try {
        render(await handle.query<ProgressState>('progress'));
      } catch {
        // not yet started, or already closed: the result will tell
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
  void poll();
  return () => {
    stopped = true;
    if (tty && last) process.stderr.write('\r\x1b[K');
  };
}
