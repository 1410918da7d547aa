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


# --- version-tag footprints: a cell is outside only when the version had every chance to show --------


def _tagged_cube():
    from oncall_ai.analysis.cube import Cube

    hour = 3_600_000
    cube = Cube.empty(T, T + 10 * hour, hour)
    busy_new = cube.cell_id((("language", "en"),))
    sparse = cube.cell_id((("language", "ja"),))
    pinned = cube.cell_id((("language", "de"),))  # served by another prompt: never shows the version
    for b in range(10):
        v = "v2" if b >= 5 else "v1"
        cube.add(busy_new, b, 50, 200, 850, (None, v, None, None))
        cube.add(pinned, b, 20, 80, 340, (None, "de-1", None, None))
        if b in (2, 7):  # one event before the switch and one after it, neither tagged v2
            cube.add(sparse, b, 1, 4, 16, (None, "v1", None, None))
    return cube, busy_new, sparse, pinned


def test_a_sparse_cell_without_the_new_version_is_not_outside_its_footprint():
    from oncall_ai.analysis.attribute import _untouched_cells

    cube, busy, sparse, pinned = _tagged_cube()
    t_switch = cube.time_of(5)
    outside = _untouched_cells(cube, "prompt_version", {"v2"}, t_switch)
    # v2 is 50 of 70 events an hour since the switch: 20 de events an hour should have shown it
    # ~70 times; the ja cell's one event after the switch, about 0.7 times: no evidence either way.
    assert outside == {pinned}
    assert busy not in outside and sparse not in outside
    assert _untouched_cells(cube, "prompt_version", {"v9"}, t_switch) is None


def test_the_footprint_of_a_prompt_version_leaves_out_only_the_cells_it_never_reached():
    from oncall_ai.analysis.attribute import Candidate, _footprint, _VersionIndex

    cube, busy, sparse, pinned = _tagged_cube()
    vidx = _VersionIndex([cube], {id(cube): set(range(len(cube.cells)))})
    cand = Candidate(None, "prompt_change", "support/system.md", "prompt_version", "v2", True, cube.time_of(5))
    cells, how = _footprint(cand, cube, vidx)
    assert cells == {busy, sparse} and "prompt_version=v2" in how
