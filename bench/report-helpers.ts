/** Small helpers shared by the fingerprint benchmark scripts: their command-line flags and how they print rates. */

/** The value of `--name VALUE` or `--name=VALUE` on the command line. */
export const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : process.argv.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
};

/** A rate as a percentage ('n/a' when there is none). */
export const pct = (v: number | null | undefined, digits = 2) => (v === null || v === undefined ? 'n/a' : `${(100 * v).toFixed(digits)}%`);
