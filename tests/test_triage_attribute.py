"""Candidate construction: which changes can be a feature's cause (footprints)."""

from __future__ import annotations

from types import SimpleNamespace

from oncall_ai.analysis.attribute import build_candidates
from oncall_ai.model import Change

T = 1_790_000_000_000


def _inp(changes, feature="support", metric_source="judge"):
    return SimpleNamespace(changes=changes, feature=feature, metric="helpfulness", metric_source=metric_source)


def _prompt(id_, paths, features=(), **details):
    return Change(id=id_, kind="prompt", target=paths[0], features=features, at=T, paths=tuple(paths),
                  source="git:prompts", details=dict(details))


def test_commit_touching_no_features_globs_is_no_candidate_for_any_feature():
    readme = _prompt("a" * 40, ["README.md", "CODEOWNERS"], owned=False, footprint="none")
    own = _prompt("b" * 40, ["support/system.md"], features=("support",))
    other = _prompt("c" * 40, ["search/rerank.md"], features=("search",))
    everyone = _prompt("d" * 40, ["shared/tone.md"])  # () = every feature
    for feature in ("support", "search", "unknown"):
        ids = {c.change.id[0] for c in build_candidates(_inp([readme, own, other, everyone], feature), T - 1, T + 1)}
        assert "a" not in ids
        assert "d" in ids
        assert ("b" in ids) == (feature == "support") and ("c" in ids) == (feature == "search")


def test_no_footprint_is_explicit_and_empty_features_still_mean_every_feature():
    assert Change(id="x", kind="prompt", target="t", features=(), at=T).affects("any")
    none = Change(id="x", kind="prompt", target="t", features=(), at=T, details={"footprint": "none"})
    assert none.no_footprint and not none.affects("any")
