#!/usr/bin/env bash
# post-summary.sh: the weekly handoff. Prints the digest as Markdown on stdout (for the wiki) and
# posts its summary to Slack (config `notify:`; the webhook URL comes from its env var and is
# never printed).
#
#   runbooks/bin/post-summary.sh [--since 7d] [--at TIME] [--dry-run] [--out FILE]
#
# --dry-run shows what would be posted (on stderr) and sends nothing; --out writes the Markdown
# to FILE instead of stdout.
# Exit: 0 done, 1 the post failed (the Markdown is still written), 2 usage/config.
set -euo pipefail

read -r -a OCA <<<"${ONCALL_AI_CMD:-oncall-ai}"
args=(digest --format markdown --post slack)
while [ $# -gt 0 ]; do
  case "$1" in
    --since|--at|--out) args+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    --dry-run) args+=(--dry-run); shift ;;
    -h|--help) grep -E '^#( |$)' "$0" | cut -c3-; exit 0 ;;
    *) echo "post-summary: unknown argument: $1" >&2; exit 2 ;;
  esac
done

exec "${OCA[@]}" "${args[@]}"
