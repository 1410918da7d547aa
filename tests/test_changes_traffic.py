"""Versions seen changing in traffic (events in a real store, SQLite and ClickHouse): switch times,
canary ramps, provider-side model changes, and links to the git changes that explain a switch."""

from __future__ import annotations

import hashlib
import json

import pytest

from changes_helpers import GitRepo, add_events, traffic, write_config
from oncall_ai.config import load_config
from oncall_ai.sources.changes import collect_changes
from oncall_ai.store import open_store
from oncall_ai.timeutil import parse_time_ms

AT = "2026-11-27T03:00:00Z"
AT_MS = parse_time_ms(AT)
START_MS = AT_MS - 24 * 3_600_000
HOUR = 3_600_000


def _ms(t: str) -> int:
    return parse_time_ms(t)


def _stable_fraction(i: int) -> float:
    return int.from_bytes(hashlib.sha256(str(i).encode()).digest()[:4], "big") / 2**32


def _config(tmp_path, store, **extra):
    data = {
        "store": store,
        "features": {"summarizer": {"model": "summarizer", "indexes": ["kb-docs"]},
                     "support": {"model": "support"}},
        "metrics": {"helpfulness": {"source": "judge", "good": ">= 4"}},
    }
    data.update(extra)
    return write_config(tmp_path, data)


def _collect(cfg_path, **kw):
    cfg = load_config(cfg_path)
    store = open_store(cfg.store, config=cfg)
    try:
        return collect_changes(cfg, store, START_MS, AT_MS, **kw)
    finally:
        store.close()


@pytest.mark.parametrize("switch_at,every_s", [
    ("2026-11-26T16:07:00Z", 30),   # 120 events/h: 5-minute buckets
    ("2026-11-26T09:58:20Z", 30),
    ("2026-11-26T21:33:00Z", 75),   # sparser: coarser buckets
])
def test_provider_side_model_change_switch_time_within_one_bucket(store_url, tmp_path, switch_at, every_s):
    cfg = _config(tmp_path, store_url)
    sw = _ms(switch_at)
    add_events(cfg, traffic("summarizer", START_MS - 24 * HOUR, AT_MS, every_ms=every_s * 1000,
                            version_at=lambda t, i: "sonnet-2026-09-01" if t < sw else "sonnet-2026-11-15"))
    add_events(cfg, traffic("support", START_MS - 24 * HOUR, AT_MS, every_ms=60_000,
                            version_at=lambda t, i: "haiku-3"))
    cs = _collect(cfg)
    assert cs.exit_code == 0, cs.problems
    assert len(cs.changes) == 1
    c = cs.changes[0]
    assert (c.kind, c.provider_side, c.target, c.features) == ("model", True, "sonnet-2026-11-15", ("summarizer",))
    assert (c.from_value, c.to_value) == ("sonnet-2026-09-01", "sonnet-2026-11-15")
    bucket = c.details["traffic"]["resolution_ms"]
    assert 5 * 60_000 <= bucket <= 15 * 60_000
    assert abs(c.at - sw) <= bucket
    assert "provider-side" in c.summary and "no pin change" in c.summary
    assert c.source == "traffic" and c.rollback is None


def test_provider_change_on_one_alias_for_two_features_is_one_change(store_url, tmp_path, run_cli):
    cfg = _config(tmp_path, store_url)
    sw = _ms("2026-11-26T16:07:00Z")
    for f in ("summarizer", "support"):
        add_events(cfg, traffic(f, START_MS - 6 * HOUR, AT_MS, every_ms=30_000,
                                version_at=lambda t, i, f=f: "sonnet-a" if t < sw + 60_000 * (f == "support") else "sonnet-b"))
    r = run_cli("--config", cfg, "changes", "list", "--at", AT, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["changes"]) == 1
    c = doc["changes"][0]
    assert c["features"] == ["summarizer", "support"] and c["provider_side"] is True
    assert c["source"] == "traffic" and c["id"].startswith("traffic:")
    text = run_cli("--config", cfg, "changes", "list", "--at", AT)
    assert "[provider-side]" in text.stdout and "provider-side model change" in text.stdout
    show = run_cli("--config", cfg, "changes", "show", c["id"])
    assert show.exit_code == 0, show.stderr
    assert "sonnet-b" in show.stdout


def test_canary_ramp_share_and_fifty_percent_crossing(store_url, tmp_path):
    cfg = _config(tmp_path, store_url)
    ramp = [(_ms("2026-11-26T10:00:00Z"), 0.1), (_ms("2026-11-26T11:00:00Z"), 0.3),
            (_ms("2026-11-26T12:00:00Z"), 0.7), (_ms("2026-11-26T13:00:00Z"), 1.0)]

    def version(t, i):
        share = 0.0
        for since, s in ramp:
            if t >= since:
                share = s
        return "idx-2" if _stable_fraction(i) < share else "idx-1"

    add_events(cfg, traffic("summarizer", START_MS - 6 * HOUR, AT_MS, every_ms=20_000, field="index_version",
                            version_at=version))
    cs = _collect(cfg)
    [c] = cs.changes
    assert (c.kind, c.target, c.features) == ("index", "kb-docs", ("summarizer",))
    assert (c.from_value, c.to_value) == ("idx-1", "idx-2")
    tr = c.details["traffic"]
    assert abs(c.at - _ms("2026-11-26T12:00:00Z")) <= tr["resolution_ms"]
    shares = [s for _, s in tr["ramp"]][:4]
    assert [round(s, 1) for s in shares] == [0.1, 0.3, 0.7, 1.0]
    assert tr["share_new"] == 1.0
    assert "ramped" in c.summary


def test_a_canary_that_never_passed_half_is_a_partial_rollout(store_url, tmp_path):
    cfg = _config(tmp_path, store_url)
    start = _ms("2026-11-26T20:10:00Z")
    add_events(cfg, traffic("support", START_MS - 6 * HOUR, AT_MS, every_ms=20_000, field="prompt_version",
                            version_at=lambda t, i: "b" * 40 if t >= start and _stable_fraction(i) < 0.2 else "a" * 40))
    cs = _collect(cfg)
    [c] = cs.changes
    assert c.kind == "prompt" and c.details["partial"] is True
    assert abs(c.at - start) <= 5 * 60_000
    assert 0.1 < c.details["traffic"]["share_new"] < 0.3
    assert "partial rollout" in c.summary


def test_a_version_that_served_for_an_hour_in_between_does_not_pull_the_next_switch_early(store_url, tmp_path):
    # a -> b (served 11:30-12:50, too briefly to hold two hours) -> c: c's switch time is when c
    # took over, not the middle of the gap between a's last event and c's first.
    cfg = _config(tmp_path, store_url)
    t_b, t_c = _ms("2026-11-26T11:30:00Z"), _ms("2026-11-26T12:50:00Z")

    def version(t, i):
        return "haiku-a" if t < t_b else ("haiku-b" if t < t_c else "haiku-c")

    add_events(cfg, traffic("support", START_MS - 6 * HOUR, AT_MS, every_ms=60_000, version_at=version))
    cs = _collect(cfg)
    by_new = {c.to_value: c for c in cs.changes}
    assert "haiku-c" in by_new, [(c.from_value, c.to_value) for c in cs.changes]
    c = by_new["haiku-c"]
    assert abs(c.at - t_c) <= c.details["traffic"]["resolution_ms"], (c.at - t_c) / 60_000


def test_a_steady_fifty_fifty_split_is_not_a_change(store_url, tmp_path):
    cfg = _config(tmp_path, store_url)
    add_events(cfg, traffic("support", START_MS - 24 * HOUR, AT_MS, every_ms=60_000, field="judge_id",
                            version_at=lambda t, i: "judge-a" if _stable_fraction(i) < 0.5 else "judge-b"))
    assert _collect(cfg).changes == []


def _git_platform(tmp_path):
    platform = GitRepo(tmp_path / "platform")
    platform.commit({"models.yaml": "summarizer: vendor-a/sonnet-2026-09-01\nsupport: vendor-a/sonnet-latest\n",
                     "indexes.yaml": "kb-docs: {version: v1}\n",
                     "judges.yaml": "helpfulness: {model: vendor-b/judge-1}\n"}, "init", "2026-11-20T00:00:00Z")
    pin = platform.commit({"models.yaml": "summarizer: vendor-a/sonnet-2026-11-15\nsupport: vendor-a/sonnet-latest\n"},
                          "summarizer to the new sonnet", "2026-11-26T10:00:00Z")
    idx = platform.commit({"indexes.yaml": "kb-docs: {version: v2}\n"}, "kb-docs v2", "2026-11-26T12:00:00Z")
    return platform, pin, idx


def test_switches_explained_by_git_changes_are_linked_not_listed(store_url, tmp_path, run_cli):
    _, pin, idx = _git_platform(tmp_path)
    prompts = GitRepo(tmp_path / "prompts")
    p0 = prompts.commit({"p/s.md": "1\n"}, "init", "2026-11-20T00:00:00Z")
    p1 = prompts.commit({"p/s.md": "2\n"}, "summarizer prompt", "2026-11-26T14:05:00Z")
    cfg = _config(tmp_path, store_url, prompt_repo="prompts", pins={"repo": "platform", "file": "models.yaml"},
                  indexes={"repo": "platform", "file": "indexes.yaml"})
    cfg_data = load_config(cfg).raw
    cfg_data["features"]["summarizer"]["prompts"] = ["p/**"]
    write_config(tmp_path, cfg_data)

    model_sw, idx_sw, prompt_sw = _ms("2026-11-26T10:12:00Z"), _ms("2026-11-26T12:40:00Z"), _ms("2026-11-26T14:20:00Z")
    add_events(cfg, [
        {**e, "model_id": "sonnet-2026-09-01" if ts < model_sw else "sonnet-2026-11-15",
         "index_version": "v1" if ts < idx_sw else "v2",
         "prompt_version": p0[:12] if ts < prompt_sw else p1[:12]}
        for e in traffic("summarizer", START_MS - 6 * HOUR, AT_MS, every_ms=30_000, version_at=lambda t, i: None)
        for ts in [int(e["ts"] * 1000)]])
    r = run_cli("--config", cfg, "changes", "list", "--at", AT, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [(c["id"], c["kind"], c["target"]) for c in doc["changes"]] == [
        (pin, "model", "summarizer"), (idx, "index", "kb-docs"), (p1, "prompt", "p/s.md")]
    for c, sw in zip(doc["changes"], (model_sw, idx_sw, prompt_sw), strict=True):
        [seen] = c["details"]["seen_in_traffic"]
        assert abs(parse_time_ms(seen["at"]) - sw) <= seen["resolution_ms"]
        assert c["provider_side"] is False
    text = run_cli("--config", cfg, "changes", "list", "--at", AT)
    assert "seen in traffic: summarizer model_id sonnet-2026-09-01 -> sonnet-2026-11-15" in text.stdout


def test_provider_change_after_a_pin_change_is_still_provider_side(store_url, tmp_path):
    """support is on a floating alias; the summarizer pin moved, support's served model moved hours
    later with no pin change: only the summarizer switch is explained."""
    _, pin, _ = _git_platform(tmp_path)
    cfg = _config(tmp_path, store_url, pins={"repo": "platform", "file": "models.yaml"})
    sw = _ms("2026-11-26T18:31:00Z")
    add_events(cfg, traffic("support", START_MS - 6 * HOUR, AT_MS, every_ms=30_000,
                            version_at=lambda t, i: "sonnet-2026-09-01" if t < sw else "sonnet-2026-11-15"))
    cs = _collect(cfg)
    assert [(c.id, c.kind, c.provider_side) for c in cs.changes][0] == (pin, "model", False)
    prov = [c for c in cs.changes if c.provider_side]
    assert len(prov) == 1 and prov[0].features == ("support",)
    assert "support = vendor-a/sonnet-latest" in prov[0].summary
    assert abs(prov[0].at - sw) <= prov[0].details["traffic"]["resolution_ms"]


def test_judge_features_come_from_events(store_url, tmp_path):
    """A judge config change affects the features that have events of that metric."""
    platform = GitRepo(tmp_path / "platform")
    platform.commit({"judges.yaml": "helpfulness: {model: j1}\nfaithfulness: {model: j1}\n"}, "init", "2026-11-20T00:00:00Z")
    sha = platform.commit({"judges.yaml": "helpfulness: {model: j2}\nfaithfulness: {model: j2}\n"}, "judges",
                          "2026-11-26T10:00:00Z")
    cfg = _config(tmp_path, store_url, judges={"repo": "platform", "file": "judges.yaml"})
    add_events(cfg, traffic("support", START_MS, START_MS + HOUR, every_ms=60_000, version_at=lambda t, i: "m"))
    cs = _collect(cfg)
    got = {c.target: c.features for c in cs.changes if c.id == sha}
    assert got == {"helpfulness": ("support",), "faithfulness": ()}  # no events: every feature


def test_same_changes_on_both_stores(tmp_path, make_store_url, run_cli):
    """Provider-side switches, a canary ramp, a partial rollout, a steady split and sparse traffic in
    one SQLite and one ClickHouse store: `changes list --json` and `changes show` print the same."""
    from both_stores import assert_same, strip

    sw = _ms("2026-11-26T16:07:00Z")
    ramp = [(_ms("2026-11-26T10:00:00Z"), 0.1), (_ms("2026-11-26T11:20:00Z"), 0.4), (_ms("2026-11-26T12:40:00Z"), 1.0)]
    partial = _ms("2026-11-26T20:10:00Z")

    def ramped(t, i):
        share = max([s for since, s in ramp if t >= since], default=0.0)
        return "idx-2" if _stable_fraction(i) < share else "idx-1"

    records = (
        traffic("summarizer", START_MS - 24 * HOUR, AT_MS, every_ms=30_000,
                version_at=lambda t, i: "sonnet-a" if t < sw else "sonnet-b")
        + traffic("summarizer", START_MS - 6 * HOUR, AT_MS, every_ms=20_000, field="index_version",
                  version_at=ramped, prefix="idx")
        + traffic("support", START_MS - 6 * HOUR, AT_MS, every_ms=20_000, field="prompt_version", prefix="p",
                  version_at=lambda t, i: "b" * 40 if t >= partial and _stable_fraction(i) < 0.2 else "a" * 40)
        + traffic("support", START_MS - 24 * HOUR, AT_MS, every_ms=60_000, field="judge_id", prefix="j",
                  version_at=lambda t, i: "judge-a" if _stable_fraction(i) < 0.5 else "judge-b")
        + traffic("support", START_MS - 24 * HOUR, AT_MS, every_ms=75_000, metric="thumbs_down", value=0.0,
                  version_at=lambda t, i: "haiku-3" if t < _ms("2026-11-26T21:33:00Z") else "haiku-4")
    )
    out = {}
    for kind in ("sqlite", "clickhouse"):
        url = make_store_url(kind)
        folder = tmp_path / kind
        folder.mkdir()
        cfg = _config(folder, url, metrics={"helpfulness": {"source": "judge", "good": ">= 4"},
                                            "thumbs_down": {"source": "user", "good": "== 0"}})
        add_events(cfg, records)
        listed = run_cli("--config", cfg, "changes", "list", "--at", AT, "--json")
        assert listed.exit_code == 0, listed.stderr
        doc = strip(json.loads(listed.stdout), url)
        shown = [run_cli("--config", cfg, "changes", "show", c["id"]).stdout for c in doc["changes"]]
        out[kind] = (doc, shown)
    doc, shown = out["sqlite"]
    assert sorted((c["kind"], c["features"][0], bool(c["details"].get("partial"))) for c in doc["changes"]) == [
        ("index", "summarizer", False), ("model", "summarizer", False), ("model", "support", False),
        ("prompt", "support", True)]
    assert_same(out["sqlite"], out["clickhouse"], what="changes list/show")
