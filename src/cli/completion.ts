/**
 * Shell completion (`s3backup completion bash|zsh|fish`), made from the tables `--help` and the
 * parser use (args.ts COMMANDS, TAKES, COMMON and each option's short name), so that neither
 * can drift from the other. zsh loads the bash script through `bashcompinit`.
 */
import { COMMANDS, COMMON, optionSpellings, TAKES } from "./args.ts";
import { UsageError } from "../util/errors.ts";

export const SHELLS = ["bash", "zsh", "fish"] as const;

/** The options command `c` takes, and the common ones, every spelling (`-f`, `--folder`). */
function spellings(c: (typeof COMMANDS)[number]): string[] {
  return [...new Set([...TAKES[c], ...COMMON, "help"])].flatMap(optionSpellings);
}

function bash(): string {
  const cases = COMMANDS.map((c) => `    ${c}) opts="${spellings(c).join(" ")}" ;;`);
  return `# s3backup completion for bash (s3backup completion bash > /etc/bash_completion.d/s3backup)
# shellcheck disable=SC2207 # compgen's words, one per completion
_s3backup() {
  local cur=\${COMP_WORDS[COMP_CWORD]} cmd="" i opts
  for ((i = 1; i < COMP_CWORD; i++)); do
    case \${COMP_WORDS[i]} in
    -*) ;;
    *) cmd=\${COMP_WORDS[i]}; break ;;
    esac
  done
  if [ -z "$cmd" ] && [[ $cur != -* ]]; then
    COMPREPLY=($(compgen -W "${COMMANDS.join(" ")}" -- "$cur"))
    return 0
  fi
  case $cmd in
${cases.join("\n")}
    *) opts="${[...COMMON, "help"].flatMap(optionSpellings).join(" ")}" ;;
  esac
  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur")); fi
  return 0
}
complete -o default -o bashdefault -F _s3backup s3backup
`;
}

function zsh(): string {
  return `# s3backup completion for zsh: the bash one, through bashcompinit (compinit first, if the
# user's zshrc has not loaded it: bashcompinit's complete needs its compdef)
(( $+functions[compdef] )) || { autoload -U +X compinit && compinit -i; }
autoload -U +X bashcompinit && bashcompinit
${bash()}`;
}

function fish(): string {
  const lines = [
    "# s3backup completion for fish (s3backup completion fish > ~/.config/fish/completions/s3backup.fish)",
    `complete -c s3backup -f -n __fish_use_subcommand -a "${COMMANDS.join(" ")}"`,
  ];
  for (const c of COMMANDS) {
    for (const s of spellings(c).filter((x) => x.startsWith("--"))) {
      lines.push(`complete -c s3backup -n "__fish_seen_subcommand_from ${c}" -l ${s.slice(2)}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** The completion script for `shell`; UsageError for another shell. */
export function completionScript(shell: string): string {
  switch (shell) {
    case "bash":
      return bash();
    case "zsh":
      return zsh();
    case "fish":
      return fish();
  }
  throw new UsageError(
    `completion: no script for ${JSON.stringify(shell)}: use ${SHELLS.join(", ")}`,
  );
}
