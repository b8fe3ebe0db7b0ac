/**
 * Meta paths on the file system of the restore: they are always relative and `/`-separated
 * (FORMAT.md §5.1); on Windows each component must also be a name Windows can hold. A path
 * that is not is reported and never written (a `\` or `:` in it would put it elsewhere). Pure.
 */

/** Device names Windows reserves, with any extension (`CON`, `nul.txt`, `COM1`, `LPT9.log`). */
const RESERVED =
  /^(CON|PRN|AUX|NUL|COM[1-9\u00b9\u00b2\u00b3]|LPT[1-9\u00b9\u00b2\u00b3])(\..*)?$/i;
// deno-lint-ignore no-control-regex
const FORBIDDEN = /[<>:"|?*\\\x00-\x1f]/;

/** Why `path` (a meta path) cannot be written on Windows, or null when it can. */
export function windowsNameProblem(path: string): string | null {
  for (const c of path.split("/")) {
    const m = FORBIDDEN.exec(c);
    if (m !== null) {
      const ch = m[0]!.charCodeAt(0) < 32 ? "a control character" : `"${m[0]}"`;
      return `the name ${JSON.stringify(c)} holds ${ch}, which Windows does not allow`;
    }
    if (RESERVED.test(c)) return `${JSON.stringify(c)} is a device name on Windows`;
    if (/[. ]$/.test(c)) {
      return `the name ${JSON.stringify(c)} ends in a dot or a space, which Windows drops`;
    }
  }
  return null;
}

/** Where meta path `rel` goes under `root`: `\`-separated on Windows, as it is elsewhere. */
export function nativePath(root: string, rel: string, windows: boolean): string {
  if (rel === "") return root;
  if (!windows) return `${root.replace(/\/+$/, "") || "/"}${root === "/" ? "" : "/"}${rel}`;
  return `${root.replace(/[\\/]+$/, "")}\\${rel.replaceAll("/", "\\")}`;
}
