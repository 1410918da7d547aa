"""Every reading command on a store that holds nothing yet (a SQLite file and a ClickHouse
database, both opened once, so both have their tables and no data): no traceback, and the same
exit code and output on both stores."""

from __future__ import annotations

import json

import pytest
import yaml

from both_stores import assert_same, strip

AT = "2026-11-27T03:00:00Z"
CONFIG = {
    "features": {"summarizer": {}},
    "metrics": {"helpfulness": {"source": "judge", "good": ">= 4", "scale": [1, 5]},
                "schema_valid": {"source": "check", "good": "== 1"}},
    "slos": [{"name": "schema", "feature": "summarizer", "metric": "schema_valid", "objective": 0.99,
              "window": "7d"}],
}
COMMANDS = [
    ["scores", "--json", "--at", AT],
    ["scores", "--feature", "summarizer", "--metric", "helpfulness", "--json", "--at", AT],
    ["triage", "--json", "--at", AT],
    ["triage", "--feature", "summarizer", "--metric", "helpfulness", "--json", "--at", AT],
    ["changes", "list", "--json", "--at", AT],
    ["judge", "drift", "--json", "--at", AT],
    ["slo", "check", "--json", "--at", AT],
    ["slo", "status", "--json", "--at", AT],
    ["export", "prometheus", "--at", AT],
    ["incident", "list", "--json"],
    ["digest", "--json", "--at", AT],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_empty_store_same_answer_on_both(run_cli, tmp_path, make_store_url, args):
    out = {}
    for kind in ("sqlite", "clickhouse"):
        url = make_store_url(kind)
        from oncall_ai.store import open_store

        open_store(url).close()
        cfg = tmp_path / f"{kind}.yaml"
        cfg.write_text(yaml.safe_dump({"store": url, **CONFIG}))
        r = run_cli("--config", cfg, *args)
        assert "Traceback" not in r.stderr
        text = r.stdout.replace(url, "<STORE>")
        out[kind] = (r.exit_code, json.loads(text) if "--json" in args else text,
                     r.stderr.replace(url, "<STORE>"))
    (code_s, doc_s, err_s), (code_c, doc_c, err_c) = out["sqlite"], out["clickhouse"]
    assert code_s == code_c, (err_s, err_c)
    assert err_s == err_c
    if "--json" in args:
        assert_same(strip(doc_s, tmp_path), strip(doc_c, tmp_path))
    else:
        assert doc_s == doc_c
