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


# --- what a prompt diff says: the slices it names, edits that cannot change much ------------------

SLICES = {"language": ["de", "en", "fr", "ja"], "persona": ["enterprise", "free", "pro"],
          "shape": ["chat", "long_doc", "qa"]}


def _with_diff(removed: list[str], added: list[str], context: list[str] = ()) -> Change:
    body = "".join(f" {c}\n" for c in context) + "".join(f"-{r}\n" for r in removed) + \
        "".join(f"+{a}\n" for a in added)
    return Change(id="e" * 40, kind="prompt", target="support/system.md", features=(), at=T,
                  diff=f"--- a/support/system.md\n+++ b/support/system.md\n@@ -1,3 +1,3 @@\n{body}")


def test_diff_slices_names_languages_personas_and_shapes_in_changed_lines_only():
    from oncall_ai.analysis.attribute import diff_slices

    c = _with_diff(["- Answer in the language of the document."],
                   ["- Answer in the language of the document. For German documents, use short bullets."],
                   context=["- For long documents, cover every section."])
    assert diff_slices(c, SLICES) == [("language", "de")]  # the context line's "long documents" is not a change
    c = _with_diff([], ["- Enterprise customers: always hand off to their account manager first."])
    assert diff_slices(c, SLICES) == [("persona", "enterprise")]
    c = _with_diff(["- For long documents, cover every section."], ["- For long documents, summarize 2,000 words."])
    assert diff_slices(c, SLICES) == [("shape", "long_doc")]
    # "pro" must not match "product", "qa" is too short to recognise in prose, no diff: nothing
    c = _with_diff([], ["- Never promise product features that are not released (QA pending)."])
    assert diff_slices(c, SLICES) == []
    assert diff_slices(Change(id="x", kind="prompt", target="t", features=(), at=T), SLICES) == []


def test_diff_inert_spots_comment_only_and_spelling_fixes_but_not_rewordings():
    from oncall_ai.analysis.attribute import diff_inert

    assert "comments" in diff_inert(_with_diff([], ["<!-- owner: @support-ai -->", ""]))
    assert "spelling" in diff_inert(_with_diff(["- Escalate refunds or legal questons."],
                                               ["- Escalate refunds or legal questions."]))
    assert diff_inert(_with_diff(["- Be friendly and concise."], ["- Be friendly and concise; no jargon."])) is None
    assert diff_inert(_with_diff(["- Always cite the article."], ["- Never cite the article."])) is None
