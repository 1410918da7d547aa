"""`judge import-run` and `judge drift` end to end on a real store (SQLite and ClickHouse), and
judge health on traffic (judge_evidence) on ingested events, the same on both stores."""

from __future__ import annotations

import json
import random

import pytest

from judge_project import build_project, items_for
from oncall_ai.config import load_config
from oncall_ai.store import open_store

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_790_000_000_000 - 1_790_000_000_000 % DAY  # a midnight, UTC


def _iso(ms: int) -> str:
    from oncall_ai.timeutil import format_time

    return format_time(ms)


def _runs(n_items=120, seed=3):
    """Four daily runs: r1, r2 by judge-a; r3, r4 by judge-b, which scores about 0.5 lower."""
    rng = random.Random(seed)
    items = items_for(n_items, scores=[rng.randint(1, 5) for _ in range(n_items)])
    view = {it["id"]: it["human_score"] + rng.gauss(0, 0.4) for it in items}
    files = {}
    for r, (judge, shift) in enumerate([("judge-a", 0.0), ("judge-a", 0.0), ("judge-b", -0.5), ("judge-b", -0.5)]):
        run_id = f"r{r + 1}"
        lines = []
        for it in items:
            score = None if rng.random() < 0.02 else min(5, max(1, round(view[it["id"]] + shift + rng.gauss(0, 0.2))))
            lines.append({"run_id": run_id, "ts": _iso(T0 + r * DAY + 2 * HOUR), "judge_id": judge,
                          "item_id": it["id"], "score": score})
        files[run_id] = lines
    return items, files


def _write(path, lines):
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path, store_url):
    items, runs = _runs()
    cfg = build_project(tmp_path / "p", api=None, items=items, store=store_url)
    paths = {k: _write(tmp_path / f"{k}.jsonl", v) for k, v in runs.items()}
    return cfg, paths, runs


def _docs(cfg):
    c = load_config(cfg)
    store = open_store(c.store)
    try:
        return store.get_docs("judge_run"), store.get_docs("judge_run_item")
    finally:
        store.close()


def test_import_run_is_idempotent(project, run_cli):
    cfg, paths, runs = project
    r = run_cli("--config", cfg, "judge", "import-run", paths["r1"])
    assert r.exit_code == 0, r.stderr
    assert "120 new item score(s), 0 already stored" in r.stdout
    r = run_cli("--config", cfg, "judge", "import-run", paths["r1"])
    assert r.exit_code == 0 and "0 new item score(s), 120 already stored" in r.stdout
    run_docs, item_docs = _docs(cfg)
    assert [d.id for d in run_docs] == ["r1"] and len(item_docs) == 120
    assert {d.id for d in item_docs} == {f"r1:{x['item_id']}" for x in runs["r1"]}
    body = run_docs[0].body
    assert body["items"] == 120 and body["judge_id"] == "judge-a" and body["metrics"] == ["helpfulness"]
    assert body["null"] == sum(1 for x in runs["r1"] if x["score"] is None)


def test_drift_flags_the_first_run_of_the_new_judge(project, run_cli):
    cfg, paths, _ = project
    for k in ("r1", "r2", "r3", "r4"):
        assert run_cli("--config", cfg, "judge", "import-run", paths[k]).exit_code == 0
    r = run_cli("--config", cfg, "judge", "drift", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["schema"] == "oncall-ai/judge-drift/v1"
    (f,) = out["findings"]
    assert f["metric"] == "helpfulness" and f["drifted"] is True and f["since_run"] == "r3"
    assert [x["run_id"] for x in f["runs"]] == ["r1", "r2", "r3", "r4"]
    assert [x["state"] for x in f["runs"]] == ["baseline", "ok", "drifted", "drifted"]
    run3 = f["runs"][2]
    for key in ("n", "null_rate", "bias", "bias_ci", "exact_agreement", "within_one_agreement", "kappa_w",
                "spearman", "false_bad_rate", "false_good_rate", "vs_baseline", "vs_previous", "judge_id"):
        assert key in run3
    assert run3["vs_baseline"]["shift"] < -0.3 and run3["vs_baseline"]["ci"][1] < 0 and run3["judge_changed"]
    assert f["direction"] == "harsher"
    assert run_cli("--config", cfg, "judge", "drift", "--fail-on-drift").exit_code == 1
    human = run_cli("--config", cfg, "judge", "drift")
    assert "DRIFTED" in human.stdout and "since run r3" in human.stdout
    # replaying the day before the new judge: no drift
    r = run_cli("--config", cfg, "judge", "drift", "--json", "--fail-on-drift", "--at", _iso(T0 + 2 * DAY))
    assert r.exit_code == 0
    (f,) = json.loads(r.stdout)["findings"]
    assert f["drifted"] is False and [x["run_id"] for x in f["runs"]] == ["r1", "r2"]
    # against the new judge as baseline, nothing moved since
    r = run_cli("--config", cfg, "judge", "drift", "--json", "--baseline", "r3")
    assert json.loads(r.stdout)["findings"][0]["drifted"] is False


def test_drift_without_runs_says_what_to_do(project, run_cli):
    cfg, _, _ = project
    r = run_cli("--config", cfg, "judge", "drift", "--metric", "helpfulness", "--json")
    assert r.exit_code == 0
    (f,) = json.loads(r.stdout)["findings"]
    assert f["drifted"] is False and f["runs"] == [] and "judge calibrate" in " ".join(f["evidence"])


def _bad(tmp_path, lines, name="bad.jsonl"):
    return _write(tmp_path / name, lines)


def test_run_referring_to_unknown_items_stores_nothing(project, run_cli, tmp_path):
    cfg, _, runs = project
    lines = runs["r1"][:5] + [dict(runs["r1"][5], item_id="item-999")] + runs["r1"][6:10]
    r = run_cli("--config", cfg, "judge", "import-run", _bad(tmp_path, lines))
    assert r.exit_code == 1
    assert "bad.jsonl:6" in r.stderr and "'item-999' is not in the calibration set" in r.stderr
    assert "nothing was stored" in r.stderr and "Traceback" not in r.stderr
    assert _docs(cfg) == ([], [])


@pytest.mark.parametrize("mutate,message", [
    (lambda x: x.pop("score"), "'score' missing"),
    (lambda x: x.update(score="good"), "is not a number or null"),
    (lambda x: x.update(score=7), "outside the scale"),
    (lambda x: x.update(ts="yesterday"), "'ts'"),
    (lambda x: x.pop("run_id"), "'run_id' missing"),
    (lambda x: x.update(judge_id="judge-z"), "one run is one judge"),
])
def test_invalid_run_lines_are_named(project, run_cli, tmp_path, mutate, message):
    cfg, _, runs = project
    lines = [dict(x) for x in runs["r1"][:4]]
    mutate(lines[2])
    r = run_cli("--config", cfg, "judge", "import-run", _bad(tmp_path, lines))
    assert r.exit_code == 1 and "bad.jsonl:3" in r.stderr and message in r.stderr, r.stderr
    assert _docs(cfg) == ([], [])


def test_a_stored_run_is_immutable(project, run_cli, tmp_path):
    cfg, paths, runs = project
    assert run_cli("--config", cfg, "judge", "import-run", paths["r1"]).exit_code == 0
    changed = [dict(x) for x in runs["r1"]]
    first_scored = next(i for i, x in enumerate(changed) if x["score"] is not None)
    changed[first_scored]["score"] = 6 - changed[first_scored]["score"] if changed[first_scored]["score"] != 3 else 4
    r = run_cli("--config", cfg, "judge", "import-run", _bad(tmp_path, changed))
    assert r.exit_code == 1 and "already stored with score" in r.stderr and f"bad.jsonl:{first_scored + 1}" in r.stderr


def test_calibration_item_without_human_score_on_import(tmp_path, run_cli, store_url):
    items, runs = _runs(10)
    del items[4]["human_score"]
    cfg = build_project(tmp_path / "p", api=None, items=items, store=store_url)
    r = run_cli("--config", cfg, "judge", "import-run", _write(tmp_path / "r1.jsonl", runs["r1"]))
    assert r.exit_code == 1 and "set.jsonl:5" in r.stderr and "no human_score" in r.stderr
    assert _docs(cfg) == ([], [])


def test_runs_listing(project, run_cli):
    cfg, paths, _ = project
    run_cli("--config", cfg, "judge", "import-run", paths["r1"])
    r = run_cli("--config", cfg, "judge", "runs", "--json")
    out = json.loads(r.stdout)
    assert out["schema"] == "oncall-ai/judge-runs/v1" and out["runs"][0]["run_id"] == "r1"


# --- judge health on traffic ------------------------------------------------------------------

METRICS = {"helpfulness": {"source": "judge", "good": ">= 4", "scale": [1, 5]},
           "schema_valid": {"source": "check", "good": "== 1"},
           "thumbs_down": {"source": "user", "good": "== 0"}}


def _traffic(switch_ms, *, judge_shift, product_drop, seed=1, days=3):
    """Hourly traffic of one feature: judge scores from judge-a, then judge-b from `switch_ms`
    (scoring `judge_shift` differently); checks and thumbs-down on every request, worse after the
    switch by `product_drop` (a product regression moves them too)."""
    rng = random.Random(seed)
    recs = []
    for h in range(days * 24):
        t0 = T0 + h * HOUR
        after = t0 >= switch_ms
        for k in range(40):
            ts = t0 + k * 60_000
            q = rng.gauss(3.8, 0.8) - (product_drop * 2 if after else 0)
            jid = "judge-b" if after else "judge-a"
            v = min(5, max(1, round(q + (judge_shift if after else 0) + rng.gauss(0, 0.4))))
            if k % 4 == 0:
                recs.append({"ts": _iso(ts), "feature": "summarizer", "metric": "helpfulness", "value": v,
                             "judge_id": jid, "slice": {"language": "en" if k % 8 else "de"}})
            recs.append({"ts": _iso(ts), "feature": "summarizer", "metric": "schema_valid",
                         "value": int(rng.random() > 0.03 + (product_drop if after else 0))})
            recs.append({"ts": _iso(ts), "feature": "summarizer", "metric": "thumbs_down",
                         "value": int(rng.random() < 0.05 + (product_drop if after else 0))})
    return recs


def _ingest(cfg_path, recs):
    from oncall_ai.ingest import ingest_records

    cfg = load_config(cfg_path)
    res = ingest_records(recs, config=cfg)
    assert res.rejected == 0


def test_judge_only_movement_and_judge_id_change(project, run_cli):
    from oncall_ai.analysis.judge_health import judge_evidence

    cfg_path, paths, _ = project
    cfg_text = cfg_path.read_text().replace("metrics:\n  helpfulness:", "metrics:\n  schema_valid: {source: check, good: '== 1'}\n"
                                            "  thumbs_down: {source: user, good: '== 0'}\n  helpfulness:")
    cfg_path.write_text(cfg_text)
    switch = T0 + 2 * DAY + 1 * HOUR  # r3 (the first run of judge-b) is at +2 d 2 h
    _ingest(cfg_path, _traffic(switch, judge_shift=-0.6, product_drop=0.0))
    for k in ("r1", "r2", "r3", "r4"):
        assert run_cli("--config", cfg_path, "judge", "import-run", paths[k]).exit_code == 0
    cfg = load_config(cfg_path)
    store = open_store(cfg.store)
    try:
        ev = judge_evidence(cfg, store, "summarizer", "helpfulness", T0, T0 + 3 * DAY, switch + 10 * 60_000)
    finally:
        store.close()
    assert ev.judge_id_changed and ev.judge_id_change.to_id == "judge-b" and ev.judge_id_change.from_id == "judge-a"
    assert ev.judge_id_change.at_ms == switch
    assert ev.judge_only_movement is True
    assert ev.drifted and ev.since_run == "r3" and ev.calibration_bias is not None and ev.bias_ci is not None
    assert ev.score >= 0.8
    text = " ".join(ev.words)
    assert "judge-a -> judge-b" in text and "stayed flat" in text
    by_id = {j.judge_id: j for j in ev.judges}
    assert by_id["judge-b"].mean < by_id["judge-a"].mean
    # `judge drift` shows it too
    r = run_cli("--config", cfg_path, "judge", "drift", "--json", "--at", _iso(T0 + 3 * DAY), "--since", "3d")
    (f,) = json.loads(r.stdout)["findings"]
    (tr,) = f["traffic"]
    assert tr["feature"] == "summarizer" and tr["judge_id_changed"] and tr["judge_id_change"]["to"] == "judge-b"
    assert {j["judge_id"] for j in tr["judges"]} == {"judge-a", "judge-b"}
    assert sum(tr["judges"][0]["histogram"].values()) == tr["judges"][0]["n"]
    human = run_cli("--config", cfg_path, "judge", "drift", "--at", _iso(T0 + 3 * DAY), "--since", "3d")
    assert "judge judge-b" in human.stdout and "judge_id changed judge-a -> judge-b" in human.stdout


def test_product_regression_is_not_judge_only(tmp_path, store_url):
    from oncall_ai.analysis.judge_health import judge_evidence

    items, _ = _runs(10)
    cfg_path = build_project(tmp_path / "p", api=None, items=items, metrics=METRICS, store=store_url)
    switch = T0 + 2 * DAY
    _ingest(cfg_path, _traffic(switch, judge_shift=0.0, product_drop=0.15))
    cfg = load_config(cfg_path)
    store = open_store(cfg.store)
    try:
        ev = judge_evidence(cfg, store, "summarizer", "helpfulness", T0, T0 + 3 * DAY, switch)
        flat = judge_evidence(cfg, store, "summarizer", "schema_valid", T0, T0 + 3 * DAY, switch)
    finally:
        store.close()
    assert ev.judge_only_movement is False
    assert any(m.worse for m in ev.movements if m.metric in ("schema_valid", "thumbs_down"))
    assert ev.score < 0.2 and not ev.drifted
    assert "product likely changed" in " ".join(ev.words)
    assert flat.score == 0 and "not judge-scored" in flat.words[0]


def test_judge_id_change_and_movement_pure():
    from oncall_ai.analysis.judge_health import Cell, detect_judge_id_change, judge_only, movement

    cells = [Cell(T0 + h * HOUR, 10, 40.0 if h < 10 else 35.0, judge_id="a" if h < 10 else "b") for h in range(20)]
    cells.append(Cell(T0 + 12 * HOUR, 1, 4.0, judge_id="a"))  # a straggler of the old judge
    ch = detect_judge_id_change(cells)
    assert (ch.from_id, ch.to_id, ch.at_ms) == ("a", "b", T0 + 10 * HOUR)
    assert ch.share_after == pytest.approx(100 / 101)
    assert detect_judge_id_change([c for c in cells if c.judge_id == "a"]) is None
    rng = random.Random(2)
    means = {T0 + h * HOUR: (4.0 if h < 10 else 3.5) + rng.gauss(0, 0.05) for h in range(20)}
    m = movement("helpfulness", "judge", means, T0 + 10 * HOUR)
    assert m.worse and m.delta == pytest.approx(-0.5, abs=0.05) and m.buckets == (10, 10)
    flat = movement("schema_valid", "check", {b: 0.97 + rng.gauss(0, 0.002) for b in means}, T0 + 10 * HOUR)
    assert not flat.worse
    assert judge_only(m, [flat]) is True
    assert judge_only(m, []) is None
    lower_is_better = movement("thumbs_down", "user", {b: (0.05 if b < T0 + 10 * HOUR else 0.09) + rng.gauss(0, 0.003)
                                                        for b in means}, T0 + 10 * HOUR, higher_is_better=False)
    assert lower_is_better.worse and judge_only(m, [flat, lower_is_better]) is False
    few = movement("x", "check", {T0: 1.0, T0 + HOUR: 1.0}, T0 + HOUR)
    assert few.t is None and not few.worse


@pytest.mark.parametrize("columns, hidden", [("120", False), ("80", True)])
def test_drift_table_fits_the_terminal(project, run_cli, monkeypatch, columns, hidden):
    """A narrow terminal hides the least needed columns (and says so) instead of cutting every cell."""
    cfg, paths, _ = project
    for k in ("r1", "r2", "r3", "r4"):
        run_cli("--config", cfg, "judge", "import-run", paths[k])
    monkeypatch.setenv("COLUMNS", columns)
    r = run_cli("--config", cfg, "judge", "drift", "--no-traffic")
    assert r.exit_code == 0, r.stderr
    table = [line for line in r.stdout.splitlines() if line[:2] in ("# ", "1 ", "2 ", "3 ", "4 ")]
    assert len(table) == 5
    assert all(len(line) <= int(columns) for line in table)
    assert "…" not in r.stdout
    assert "drifted" in table[3] and "Δ baseline" in table[0] and "bias" in table[0]
    assert ("ρ" not in table[0] and "hidden" in r.stdout) if hidden else ("ρ" in table[0] and "hidden" not in r.stdout)


@pytest.mark.parametrize("judge_shift,product_drop", [(-0.6, 0.0), (0.0, 0.15)])
def test_same_judge_health_on_both_stores(tmp_path, make_store_url, run_cli, judge_shift, product_drop):
    """The same runs and traffic in SQLite and in ClickHouse: `judge drift --json` (runs, bias,
    agreement, traffic evidence with histograms and movements) and judge_evidence field by field."""
    import dataclasses

    from both_stores import assert_same, strip
    from oncall_ai.analysis.judge_health import judge_evidence

    items, runs = _runs()
    switch = T0 + 2 * DAY + HOUR
    traffic = _traffic(switch, judge_shift=judge_shift, product_drop=product_drop)
    out = {}
    for kind in ("sqlite", "clickhouse"):
        url = make_store_url(kind)
        cfg_path = build_project(tmp_path / kind, api=None, items=items, metrics=METRICS, store=url)
        _ingest(cfg_path, traffic)
        for k, lines in runs.items():
            assert run_cli("--config", cfg_path, "judge", "import-run", _write(tmp_path / f"{kind}-{k}.jsonl", lines)).exit_code == 0
        r = run_cli("--config", cfg_path, "judge", "drift", "--json", "--at", _iso(T0 + 3 * DAY), "--since", "3d")
        assert r.exit_code == 0, r.stderr
        cfg = load_config(cfg_path)
        with open_store(cfg.store) as store:
            ev = judge_evidence(cfg, store, "summarizer", "helpfulness", T0, T0 + 3 * DAY, switch + 10 * 60_000)
        out[kind] = strip({"drift": json.loads(r.stdout), "evidence": json.loads(json.dumps(
            dataclasses.asdict(ev), default=str))}, tmp_path / kind, url)
    assert out["sqlite"]["drift"]["findings"][0]["traffic"]
    assert_same(out["sqlite"], out["clickhouse"])
