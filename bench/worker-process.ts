/**
 * A real lifeboat worker in a process of its own, for the benchmark to measure
 * (its peak RSS is read from /proc/<pid>/status by the parent).
 *
 *   node <out>/bench/worker-process.js --config FILE --task-queue QUEUE
 *
 * Builds the worker with `createWorker` from src/worker, exactly as
 * `lifeboat worker` does (prebuilt workflow bundle, activities, native connection), on a
 * dedicated task queue, and runs until SIGTERM (Temporal's Runtime turns the
 * signal into a graceful shutdown). When the worker is built it tells the
 * parent over the IPC channel (`{ ready: true }`), or prints `ready <pid>` on
 * stdout when it was started without one; when that channel closes (the
 * parent died), it shuts down too.
 */
import { loadConfig } from '../src/config/load';
import { messageOf } from '../src/errors';
import { createWorker } from '../src/worker';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const configFile = arg('--config') ?? process.env.LIFEBOAT_CONFIG;
  const taskQueue = arg('--task-queue');
  if (!configFile || !taskQueue) throw new Error('usage: worker-process --config FILE --task-queue QUEUE');
  const config = loadConfig(configFile);
  const { worker, connection } = await createWorker(config, { taskQueue });
  const running = worker.run();
  if (process.send) {
    // A parent that is gone (killed without stopping us) leaves no worker behind polling its queue.
    process.once('disconnect', () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
    });
    process.send({ ready: true, pid: process.pid });
  } else {
    console.log(`ready ${process.pid}`);
  }
  try {
    await running;
  } finally {
    await connection.close();
  }
  // The IPC channel would keep the event loop alive.
  if (process.connected) process.disconnect();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`worker-process: ${messageOf(err)}`);
    process.exit(1);
  },
);
