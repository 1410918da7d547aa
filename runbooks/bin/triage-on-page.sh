#!/usr/bin/env bash
# triage-on-page.sh: on a page, what is wrong and what to do: per detected regression the onset,
# the slices, the top suspect with its change id, the rollback command and the runbook to open.
#
#   runbooks/bin/triage-on-page.sh [--feature F --metric M] [--since 24h] [--at TIME]
#
# Exit: 0 triage ran and found no regression, 1 it found at least one (printed), 2 usage or
# configuration error. Runs `oncall-ai` or $ONCALL_AI_CMD; runbook paths are absolute.
set -euo pipefail

PY=$(cat <<'PYEOF'
import json, os, sys
doc = json.load(sys.stdin)
books = os.environ['RUNBOOKS']
found = [f for f in doc['findings'] if f['regression']['detected']]
for note in doc.get('notes', []):
    print(f"note: {note}", file=sys.stderr)
if not found:
    print(f"no regression between {doc['since']} and {doc['at']}")
    print(f"runbook: {books}/false_page.md")
    sys.exit(0)
for f in found:
    r = f['regression']
    where = ", ".join(f"{k}={v}" for k, v in sorted(f.get('scope', {}).items())) or "all traffic"
    print(f"REGRESSION {f['feature']}/{f['metric']} in {where}: {r['baseline']} -> {r['current']} "
          f"since {r['onset']} (p={r['p_value']})")
    hyps = f.get('hypotheses') or []
    if not hyps:
        print("  no hypothesis: look at `oncall-ai changes list --since 24h`")
        print(f"  runbook: {books}/false_page.md")
    for h in hyps[:2]:
        ch = h.get('change') or {}
        print(f"  #{h['rank']} {h['kind']} {h['target']} (score {h['score']}) change {ch.get('id') or '-'}")
        if h.get('rollback'):
            print(f"     rollback: {h['rollback']}")
        if h.get('next_check'):
            print(f"     confirm:  {h['next_check']}")
        book = os.path.join(books, os.path.basename(h.get('runbook') or (h['kind'] + ".md")))
        print(f"     runbook:  {book}")
sys.exit(1)
PYEOF
)
read -r -a OCA <<<"${ONCALL_AI_CMD:-oncall-ai}"
RUNBOOKS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
args=(triage --json)
while [ $# -gt 0 ]; do
  case "$1" in
    --feature|--metric|--since|--at) args+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    -h|--help) grep -E '^#( |$)' "$0" | cut -c3-; exit 0 ;;
    *) echo "triage-on-page: unknown argument: $1" >&2; exit 2 ;;
  esac
done

json=$("${OCA[@]}" "${args[@]}")
printf '%s\n' "$json" | RUNBOOKS="$RUNBOOKS" python3 -c "$PY"
