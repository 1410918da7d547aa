#!/usr/bin/env bash
# resolve-incident.sh: close the loop on an incident: resolve it with its cause, export its
# failing requests as eval cases, and write the postmortem draft next to them.
#
#   runbooks/bin/resolve-incident.sh ID --resolution rollback|narrowed|accepted|false-alarm \
#       [--cause CHANGE] [--note TEXT] [--out DIR] [--limit N] [--at TIME]
#
# --out DIR (default eval-cases) receives ID-NNN.jsonl, ID-NNN.tests.yaml and ID-postmortem.md.
# Without --cause, the change the incident's rollback undid. Running it again on a resolved
# incident only re-exports (nothing new) and rewrites the postmortem draft.
# Exit: 0 done, 1 a step failed (named on stderr), 2 usage.
set -euo pipefail

PY=$(cat <<'PYEOF'
import json, sys
doc = json.load(sys.stdin)
for note in doc.get('notes', []):
    print(f"note: {note}", file=sys.stderr)
print(f"eval cases: {doc['exported']} new, {doc['already_exported']} exported before", file=sys.stderr)
for f in doc.get('files', []):
    print(f)
PYEOF
)
read -r -a OCA <<<"${ONCALL_AI_CMD:-oncall-ai}"
id=""
out="eval-cases"
resolve_args=()
view_args=()
export_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --resolution|--cause|--note) resolve_args+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    --at) resolve_args+=(--at "${2:?--at needs a time}"); view_args+=(--at "$2"); shift 2 ;;
    --out) out="${2:?--out needs a folder}"; shift 2 ;;
    --limit) export_args+=(--limit "${2:?--limit needs a number}"); shift 2 ;;
    -h|--help) grep -E '^#( |$)' "$0" | cut -c3-; exit 0 ;;
    -*) echo "resolve-incident: unknown option: $1" >&2; exit 2 ;;
    *) if [ -n "$id" ]; then echo "resolve-incident: one incident id, please" >&2; exit 2; fi; id="$1"; shift ;;
  esac
done
if [ -z "$id" ]; then
  echo "resolve-incident: give the incident id (oncall-ai incident list --state active)" >&2
  exit 2
fi

state=$("${OCA[@]}" incident show "$id" --json "${view_args[@]}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["incident"]["state"])')
if [ "$state" != "resolved" ]; then
  if [ ${#resolve_args[@]} -eq 0 ]; then
    echo "resolve-incident: --resolution is needed to resolve $id" >&2
    exit 2
  fi
  "${OCA[@]}" incident resolve "$id" "${resolve_args[@]}" >&2
else
  echo "$id is already resolved; exporting and writing the postmortem only" >&2
fi
mkdir -p "$out"
"${OCA[@]}" incident export-cases "$id" --out "$out" --json "${export_args[@]}" "${view_args[@]}" \
  | python3 -c "$PY"
"${OCA[@]}" incident postmortem "$id" --out "$out/$id-postmortem.md" "${view_args[@]}"
echo "$out/$id-postmortem.md"
