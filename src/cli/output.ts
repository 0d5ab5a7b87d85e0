/** Prints for people, or one JSON document with --json. */
export interface Output {
  json: boolean;
  /** A human line; suppressed with --json. */
  say(line: string): void;
  /** The command's result: JSON with --json, else the given human lines. */
  result(value: unknown, human: string[]): void;
  error(message: string, extra?: Record<string, unknown>): void;
}

export function output(json: boolean): Output {
  return {
    json,
    say(line) {
      if (!json) process.stderr.write(`${line}\n`);
    },
    result(value, human) {
      if (json) process.stdout.write(`${JSON.stringify(value)}\n`);
      else for (const l of human) process.stdout.write(`${l}\n`);
    },
    error(message, extra) {
      if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: message, ...extra })}\n`);
      else process.stderr.write(`lifeboat: ${message}\n`);
    },
  };
}

export function seconds(s: number): string {
  return `${s.toFixed(1)}s`;
}

export { formatBytes as bytes } from '../domain/format';
