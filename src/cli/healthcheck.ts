import { loadConfig } from '../config/load';
import { messageOf } from '../errors';

/**
 * The container image's HEALTHCHECK (`node dist/cli/healthcheck.js`): with
 * `metrics:` in the config, the worker must answer GET /metrics and its scrape
 * must include the Temporal SDK's runtime metrics; exit 0 healthy, 1 not.
 * Without `metrics:` there is nothing to ask, and a running container is
 * taken as healthy (said on stdout, which `docker inspect` shows).
 */
async function main(): Promise<number> {
  const config = loadConfig();
  if (!config.metrics) {
    process.stdout.write(`no metrics: section in ${config.file}; add metrics: { port: 9464 } for a real health check\n`);
    return 0;
  }
  const host = config.metrics.host === '0.0.0.0' || config.metrics.host === '::' ? '127.0.0.1' : config.metrics.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${config.metrics.port}/metrics`;
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url} answered HTTP ${res.status}`);
  if (!/^lifeboat_temporal_sdk_metrics_up 1$/m.test(text)) throw new Error(`${url} has no Temporal SDK metrics: the worker's runtime is not serving them`);
  process.stdout.write(`ok: ${url}\n`);
  return 0;
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stdout.write(`unhealthy: ${messageOf(err)}\n`);
    process.exitCode = 1;
  },
);
