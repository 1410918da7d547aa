"""Prometheus output: counters in the text exposition format, and SLO recording + alerting rules.

`oncall-ai export prometheus` writes two counters per feature, metric and slice (the slice keys of
`slices:` in the config plus those used by SLO `where:` filters, as labels `slice_<key>`):

    oncall_ai_eval_events_total{feature, metric, slice_*}   scored events
    oncall_ai_eval_good_total{feature, metric, slice_*}     of those, good by the metric's good rule

The values are totals over the store up to the export time (`--at`), so they only grow as events are
ingested: counters Prometheus can `rate()`. Written for the node-exporter textfile collector (no
sample timestamps; the file is replaced atomically) or a pushgateway (`curl --data-binary @file`).

`oncall-ai slo rules` turns every SLO of the config into Sloth-style rule groups over those counters
(multi-window multi-burn-rate, the same pairs `slo check` uses: analysis/slo.py):

    oncall-ai-slo-sli-<slo>     oncall_ai_slo:sli_error:ratio_rate<w>   bad ratio over each window w
                                oncall_ai_slo:sli_events:increase<w>    events over each window w
                                oncall_ai_slo:sli_error:wilson_lower<w> (sampled SLOs, long windows)
    oncall-ai-slo-meta-<slo>    objective, error budget, period bad ratio, budget left, current burn
    oncall-ai-slo-alerts-<slo>  OncallAIQualitySLOBurn with oncall_ai_severity page / ticket
                                (severity critical / warning, the values PagerDuty and Alertmanager
                                integrations understand)

Differences from `slo check` that cannot be avoided: Prometheus sees an event when the counter file is
next written (ingest time, not event time), and `increase()` extrapolates at window edges.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from oncall_ai.analysis.slo import burn_pairs, effective_min_events, windows_needed
from oncall_ai.analysis.stats import Z_ONE_SIDED_95
from oncall_ai.timeutil import format_duration

EVENTS_METRIC = "oncall_ai_eval_events_total"
GOOD_METRIC = "oncall_ai_eval_good_total"
EXPORT_TS_METRIC = "oncall_ai_export_timestamp_seconds"
ALERT_NAME = "OncallAIQualitySLOBurn"
SEVERITY_LABEL = {"page": "critical", "ticket": "warning"}

_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]")


def slice_label(key: str) -> str:
    """Prometheus label for a slice key: `slice_` + the key with other characters as `_`."""
    return "slice_" + _LABEL_BAD.sub("_", key)


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


def _num(x: float) -> str:
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e15):
        return str(int(x))
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x))


def exported_slice_keys(cfg) -> tuple[str, ...]:
    keys = list(cfg.slices)
    for slo in cfg.slos:
        for k, _ in slo.where:
            if k not in keys:
                keys.append(k)
    return tuple(keys)


# --- exposition -------------------------------------------------------------------------------

def counter_rows(store, cfg, at_ms: int) -> list[tuple[tuple[tuple[str, str], ...], int, int | None]]:
    """(labels, events, good or None) per feature, metric and exported slice, events before at_ms."""
    keys = exported_slice_keys(cfg)
    by_metric: dict[str, list] = {}
    for s in store.series():
        by_metric.setdefault(s.metric, []).append(s)
    rows: dict[tuple, list] = {}
    for metric, series in sorted(by_metric.items()):
        rule = cfg.metric(metric).good
        aggs = store.aggregate([s.id for s in series], 0, at_ms, good_rule=rule)
        for s in series:
            agg = aggs.get((s.id, None))
            if agg is None or not agg.n:
                continue
            labels = (("feature", s.feature), ("metric", s.metric),
                      *((slice_label(k), s.get(k) or "") for k in keys))
            cell = rows.setdefault(labels, [0, 0 if rule is not None else None])
            cell[0] += agg.n
            if cell[1] is not None and agg.good is not None:
                cell[1] += agg.good
    return [(labels, n, good) for labels, (n, good) in sorted(rows.items())]


def exposition(rows, at_ms: int) -> str:
    """Text exposition format 0.0.4 (one HELP/TYPE per metric, newline at the end)."""
    out = [f"# HELP {EVENTS_METRIC} Scored eval events in the oncall-ai store, by feature, metric and slice.",
           f"# TYPE {EVENTS_METRIC} counter"]
    for labels, n, _good in rows:
        out.append(f"{EVENTS_METRIC}{_labels((k, v) for k, v in labels if v != '')} {n}")
    out += [f"# HELP {GOOD_METRIC} Scored eval events that are good by the metric's good rule.",
            f"# TYPE {GOOD_METRIC} counter"]
    for labels, _n, good in rows:
        if good is not None:
            out.append(f"{GOOD_METRIC}{_labels((k, v) for k, v in labels if v != '')} {good}")
    out += [f"# HELP {EXPORT_TS_METRIC} When oncall-ai wrote these counters (events before this time are counted).",
            f"# TYPE {EXPORT_TS_METRIC} gauge",
            f"{EXPORT_TS_METRIC} {_num(at_ms / 1000)}"]
    return "\n".join(out) + "\n"


# --- rules ------------------------------------------------------------------------------------

def is_sampled_by_config(slo, cfg) -> bool:
    """Rules are generated from the config alone: `sampled:` if set, else source judge."""
    if slo.sampled is not None:
        return slo.sampled
    return cfg.metric(slo.metric).source == "judge"


def _selector(slo) -> str:
    pairs = [("feature", slo.feature), ("metric", slo.metric)]
    pairs += [(slice_label(k), v) for k, v in slo.where]
    return _labels(pairs)


def _slo_id_labels(slo) -> dict[str, str]:
    return {"oncall_ai_slo": slo.name, "feature": slo.feature, "metric": slo.metric}


def _group_name(kind: str, slo_name: str) -> str:
    return f"oncall-ai-slo-{kind}-{slo_name}"


def _w(ms: int) -> str:
    return format_duration(ms)


def _budget(objective: float) -> float:
    return round(1.0 - objective, 12)


def rule_groups(cfg) -> list[dict]:
    """Rule groups (as plain dicts for YAML) for every SLO in the config."""
    groups = []
    for slo in cfg.slos:
        sampled = is_sampled_by_config(slo, cfg)
        min_events = effective_min_events(slo.min_events, sampled)
        sel = _selector(slo)
        ids = _slo_id_labels(slo)
        idsel = _labels([("oncall_ai_slo", slo.name)])
        budget = _budget(slo.objective)
        pairs = burn_pairs(slo.window_ms)
        long_windows = {p.long_ms for p in pairs}
        sli_rules = []
        for w in windows_needed(slo.window_ms):
            if w == slo.window_ms and w not in long_windows:
                continue  # the period ratio is a meta rule
            ws = _w(w)
            sli_rules.append({
                "record": f"oncall_ai_slo:sli_error:ratio_rate{ws}",
                "expr": (f"1 - (sum(rate({GOOD_METRIC}{sel}[{ws}]))\n"
                         f"  / sum(rate({EVENTS_METRIC}{sel}[{ws}])))"),
                "labels": dict(ids)})
            sli_rules.append({
                "record": f"oncall_ai_slo:sli_events:increase{ws}",
                "expr": f"sum(increase({EVENTS_METRIC}{sel}[{ws}]))",
                "labels": dict(ids)})
        if sampled:
            z = Z_ONE_SIDED_95
            z2 = round(z * z, 10)
            for w in sorted(long_windows):
                ws = _w(w)
                p = f"oncall_ai_slo:sli_error:ratio_rate{ws}{idsel}"
                n = f"oncall_ai_slo:sli_events:increase{ws}{idsel}"
                sli_rules.append({
                    "record": f"oncall_ai_slo:sli_error:wilson_lower{ws}",
                    "expr": (f"# one-sided 95% Wilson lower bound of the bad ratio (z = {z:.6f})\n"
                             f"clamp_min(\n"
                             f"  ({p} + {z2} / (2 * {n})\n"
                             f"   - {z:.10f} * sqrt({p} * (1 - {p}) / {n} + {z2} / (4 * {n} ^ 2)))\n"
                             f"  / (1 + {z2} / {n}),\n"
                             f"  0)"),
                    "labels": dict(ids)})
        ps = _w(slo.window_ms)
        meta_rules = [
            {"record": "oncall_ai_slo:objective:ratio", "expr": f"vector({_num(slo.objective)})", "labels": dict(ids)},
            {"record": "oncall_ai_slo:error_budget:ratio", "expr": f"vector({_num(budget)})", "labels": dict(ids)},
            {"record": "oncall_ai_slo:time_period:days", "expr": f"vector({_num(slo.window_ms / 86_400_000)})",
             "labels": dict(ids)},
            {"record": f"oncall_ai_slo:sli_error:ratio_increase{ps}",
             "expr": (f"1 - (sum(increase({GOOD_METRIC}{sel}[{ps}]))\n"
                      f"  / sum(increase({EVENTS_METRIC}{sel}[{ps}])))"),
             "labels": dict(ids)},
            {"record": "oncall_ai_slo:period_error_budget_remaining:ratio",
             "expr": f"1 - oncall_ai_slo:sli_error:ratio_increase{ps}{idsel} / {_num(budget)}",
             "labels": dict(ids)},
            {"record": "oncall_ai_slo:current_burn_rate:ratio",
             "expr": f"oncall_ai_slo:sli_error:ratio_rate{_w(min(p.short_ms for p in pairs))}{idsel} / {_num(budget)}",
             "labels": dict(ids)},
        ]
        alert_rules = []
        for severity in ("page", "ticket"):
            chosen = [p for p in pairs if p.severity == severity or (slo.severity == "ticket" and severity == "ticket")]
            if slo.severity == "ticket" and severity == "page":
                continue
            terms = []
            for p in chosen:
                thr = f"({_num(p.burn)} * {_num(budget)})"
                lw, sw = _w(p.long_ms), _w(p.short_ms)
                long_metric = "wilson_lower" if sampled else "ratio_rate"
                terms.append(
                    "(\n"
                    f"    oncall_ai_slo:sli_error:{long_metric}{lw}{idsel} > {thr}\n"
                    f"  and\n"
                    f"    oncall_ai_slo:sli_error:ratio_rate{sw}{idsel} > {thr}\n"
                    f"  and\n"
                    f"    oncall_ai_slo:sli_events:increase{lw}{idsel} >= {min_events}\n"
                    ")")
            if not terms:
                continue
            desc = ", ".join(f"{p.burn:g}x over {_w(p.long_ms)} and {_w(p.short_ms)}" for p in chosen)
            alert_rules.append({
                "alert": ALERT_NAME,
                "expr": "\nor\n".join(terms),
                # oncall_ai_slo is on the series already; repeated so rules of two SLOs never look alike
                "labels": {"severity": SEVERITY_LABEL[severity], "oncall_ai_severity": severity,
                           "oncall_ai_slo": slo.name},
                "annotations": {
                    "summary": (f"{slo.name}: {slo.feature}/{slo.metric} quality SLO "
                                f"({_num(slo.objective * 100)}% over {ps}) is burning its error budget ({severity})"),
                    "description": (f"Burn-rate pairs: {desc}"
                                    + (" (long windows on the 95% Wilson lower bound, sampled metric)" if sampled else "")
                                    + f". Investigate: oncall-ai slo status; "
                                    f"oncall-ai triage --feature {slo.feature} --metric {slo.metric}"),
                },
            })
        groups.append({"name": _group_name("sli", slo.name), "rules": sli_rules})
        groups.append({"name": _group_name("meta", slo.name), "rules": meta_rules})
        if alert_rules:
            groups.append({"name": _group_name("alerts", slo.name), "rules": alert_rules})
    return groups


class _Literal(str):
    pass


def rules_yaml(cfg, *, source: str | None = None) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def literal(dumper, data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)

    Dumper.add_representer(_Literal, literal)

    def wrap(obj):
        if isinstance(obj, dict):
            return {k: wrap(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [wrap(v) for v in obj]
        if isinstance(obj, str) and "\n" in obj:
            return _Literal(obj)
        return obj

    header = ("# Prometheus recording and alerting rules for oncall-ai quality SLOs.\n"
              f"# Generated by `oncall-ai slo rules`{' from ' + source if source else ''}; do not edit by hand.\n"
              f"# Counters: `oncall-ai export prometheus` ({EVENTS_METRIC}, {GOOD_METRIC}).\n")
    body = yaml.dump({"groups": wrap(rule_groups(cfg))}, Dumper=Dumper, sort_keys=False, width=1000,
                     allow_unicode=True)
    return header + body
