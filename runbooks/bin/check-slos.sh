#!/usr/bin/env bash
# check-slos.sh: every SLO's state in one line each (only those not ok), for cron and pager hooks.
#
#   runbooks/bin/check-slos.sh [--notify] [--at TIME] [--all]
#
#   --notify   also send alerts that changed (Slack / PagerDuty, config `notify:`)
#   --at TIME  evaluate as if it were TIME (replays)
#   --all      print ok SLOs too
#
# Exit: 0 every SLO ok, 1 ticket, 2 page, 3 unknown (no data, or a config/store problem):
# the monitoring-plugin convention of `oncall-ai slo check`.
# Runs `oncall-ai`, or the command in $ONCALL_AI_CMD (e.g. "python -m oncall_ai").
set -euo pipefail

PY=$(cat <<'PYEOF'
import json, os, sys
doc = json.load(sys.stdin)
if doc.get('error'):
    print("UNKNOWN - " + doc['error'].splitlines()[0])
for slo in doc.get('slos', []):
    if slo['state'] != "ok" or os.environ.get('ALL') == "1":
        print(slo['line'])
bad = sum(1 for s in doc.get('slos', []) if s['state'] != "ok")
print(f"{doc.get('state', 'unknown').upper()}: {bad} of {len(doc.get('slos', []))} SLO(s) not ok", file=sys.stderr)
PYEOF
)
read -r -a OCA <<<"${ONCALL_AI_CMD:-oncall-ai}"
args=(slo check --json)
all=0
while [ $# -gt 0 ]; do
  case "$1" in
    --notify) args+=(--notify); shift ;;
    --at) args+=(--at "${2:?--at needs a time}"); shift 2 ;;
    --all) all=1; shift ;;
    -h|--help) grep -E '^#( |$)' "$0" | cut -c3-; exit 0 ;;
    *) echo "check-slos: unknown argument: $1" >&2; exit 3 ;;
  esac
done

rc=0
json=$("${OCA[@]}" "${args[@]}") || rc=$?
if [ -z "$json" ]; then
  echo "UNKNOWN - oncall-ai slo check printed nothing (exit $rc)" >&2
  exit 3
fi
printf '%s\n' "$json" | ALL="$all" python3 -c "$PY"
exit "$rc"
