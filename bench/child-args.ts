/** `--name value` arguments of a benchmark child process; `script` names it in the error. */
export function childArg(script: string, name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback === undefined) throw new Error(`${script}: missing --${name}`);
  return fallback;
}
