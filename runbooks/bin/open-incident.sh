#!/usr/bin/env bash
# open-incident.sh: open an incident for the worst regression triage finds (keeping the triage
# snapshot), and print its id on stdout, so the next commands can use it:
#
#   id=$(runbooks/bin/open-incident.sh [--feature F --metric M] [--severity sev2] [--title T] [--since 24h] [--at TIME])
#
# When one is already open for that feature and metric, its id is printed instead (nothing new).
# Exit: 0 an id was printed, 1 triage found no regression (nothing opened), 2 usage/config.
set -euo pipefail

PY=$(cat <<'PYEOF'
import json, sys
doc = json.load(sys.stdin)
inc = doc['incident']
verb = "opened" if doc['created'] else "already open"
print(f"{verb}: {inc['id']} [{inc['severity']}] {inc['title']}", file=sys.stderr)
s = inc.get('suspect') or {}
if s.get('change_id'):
    print(f"suspect: {s['kind']} {s['target']} change {s['change_id']}", file=sys.stderr)
if s.get('runbook'):
    print(f"runbook: {s['runbook']}", file=sys.stderr)
print(inc['id'])
PYEOF
)
read -r -a OCA <<<"${ONCALL_AI_CMD:-oncall-ai}"
args=(incident open --from-triage --json)
while [ $# -gt 0 ]; do
  case "$1" in
    --feature|--metric|--severity|--title|--since|--at) args+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    -h|--help) grep -E '^#( |$)' "$0" | cut -c3-; exit 0 ;;
    *) echo "open-incident: unknown argument: $1" >&2; exit 2 ;;
  esac
done

json=$("${OCA[@]}" "${args[@]}")
printf '%s\n' "$json" | python3 -c "$PY"
