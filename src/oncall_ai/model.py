"""Domain records shared across modules (plain frozen dataclasses, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

CHANGE_KINDS = ("prompt", "model", "index", "judge", "traffic", "config", "other")


@dataclass(frozen=True)
class Change:
    """One entry of the change timeline (CONTRACT.md section 3 and 6, `changes list --json`).

    id:       the full commit sha for a change found in git; the recorded id for a recorded change;
              `traffic:<feature>:<field>:<new value>:<switch ms>` for a version switch seen in events.
    kind:     prompt | model | index | judge | traffic | config | other
              (a served model_id that moved with no pin change is kind "model" with
              provider_side=True; triage turns it into `provider_model_change`).
    target:   prompt path, pin key, index name, judged metric, or for traffic the field that moved.
    features: the features this change can affect (its footprint); () means every feature, unless
              details["footprint"] == "none" (it affects none: see no_footprint).
    at:       epoch ms.
    source:   "git:<repo path>", "recorded", or "traffic".
    """

    id: str
    kind: str
    target: str
    features: tuple[str, ...]
    at: int
    by: str | None = None
    summary: str = ""
    source: str = ""
    rollback: str | None = None
    from_value: str | None = None
    to_value: str | None = None
    diff: str | None = None
    paths: tuple[str, ...] = ()
    provider_side: bool = False
    # Free-form evidence for the timeline and triage: e.g. traffic shares on old/new version per
    # bucket for canary ramps ({"ramp": [[ts_ms, share_new], ...], "share_new": 0.97}).
    details: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def no_footprint(self) -> bool:
        """True for a change that touches nothing any configured feature uses (a README in the
        prompt repo, a pin or index no feature uses, a comment-only edit): still listed as a
        candidate, but it affects no feature. Marked by details["footprint"] == "none"."""
        return self.details.get("footprint") == "none"

    def affects(self, feature: str) -> bool:
        if self.no_footprint:
            return False
        return not self.features or feature in self.features
