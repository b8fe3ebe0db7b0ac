/**
 * Escaping of paths and header values in meta files (FORMAT.md §5.2).
 *
 * Every backslash in the output starts an escape that bash's `printf '%b'` undoes, so the
 * restore kit decodes a field with `printf -v decoded '%b' "$escaped"`.
 */

const NAMED: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function hex2(code: number): string {
  return `\\x${code.toString(16).padStart(2, "0")}`;
}

/**
 * Escapes `s` for a meta line. Text mode (paths, header values) keeps spaces; field mode
 * (symlink targets, which are followed by another field) writes a space as `\x20`.
 */
export function escapeText(s: string, mode: "text" | "field" = "text"): string {
  let out = "";
  for (const ch of s) {
    const named = NAMED[ch];
    if (named !== undefined) {
      out += named;
      continue;
    }
    const code = ch.codePointAt(0)!;
    if (code < 0x20 || code === 0x7f || (mode === "field" && code === 0x20)) out += hex2(code);
    else out += ch;
  }
  return out;
}

/** Undoes {@linkcode escapeText} (either mode). Throws on an escape the format never writes. */
export function unescapeText(s: string): string {
  if (!s.includes("\\")) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch !== "\\") {
      out += ch;
      continue;
    }
    const next = s[i + 1];
    switch (next) {
      case "\\":
        out += "\\";
        i++;
        break;
      case "n":
        out += "\n";
        i++;
        break;
      case "r":
        out += "\r";
        i++;
        break;
      case "t":
        out += "\t";
        i++;
        break;
      case "x": {
        const hex = s.slice(i + 2, i + 4);
        if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new SyntaxError(`Bad escape \\x${hex}`);
        out += String.fromCharCode(parseInt(hex, 16));
        i += 3;
        break;
      }
      default:
        throw new SyntaxError(`Bad escape \\${next ?? ""} at end or unknown`);
    }
  }
  return out;
}
