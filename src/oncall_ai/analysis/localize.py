"""Which slices carry the drop, without drowning in comparisons.

Procedure (statistics.md section 3.1, Adtributor/RiskLoc style, hierarchical):

1. Every single slice value (`language=de`) is tested pre vs post with Welch's test (variances
   inflated by the overdispersion phi), one-sided in the bad direction.
2. Pairs (`language=de, persona=legal`) are tested only inside single values that passed
   (hierarchical: the family stays small).
3. Benjamini-Hochberg at q = 0.05 over everything tested.
4. Gates: a minimum sample (events after the onset) and a minimum contribution: the slice's part
   of the Kitagawa change (rate + mix of its cells) must be >= 10 % of the drop.
5. A pair is reported only when it concentrates the drop: it carries >= 2/3 of the share of each
   single value it refines (otherwise the single value is the better explanation).

`scope` is the most specific slice that carries most of the drop (share >= 2/3) and sits where
the drop is clearly concentrated (its delta differs from the rest of the traffic); {} means the
drop is everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from oncall_ai.analysis.cube import Cube
from oncall_ai.analysis.decompose import Decomposition
from oncall_ai.analysis.stats import Moments, bh_adjusted, normal_sf, welch


@dataclass(frozen=True)
class LocalizeParams:
    q: float = 0.05
    min_events: int = 10  # events after the onset in the slice
    min_share: float = 0.1
    pair_share_of_parent: float = 0.67
    scope_share: float = 0.67
    scope_max_traffic: float = 0.8  # a "slice" carrying more traffic than this is the whole feature
    max_rows: int = 10


@dataclass
class SliceResult:
    where: dict[str, str]
    baseline: float | None
    current: float | None
    delta: float | None
    n: int  # events after the onset
    n_baseline: int
    share_of_drop: float | None
    traffic_share: float  # of events after the onset
    p_value: float  # one-sided, bad direction
    q_value: float = 1.0  # BH-adjusted
    significant: bool = False

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.where.items())

    def to_json(self) -> dict:
        return {"slice": dict(self.where), "baseline": _r(self.baseline), "current": _r(self.current),
                "delta": _r(self.delta), "n": self.n, "share_of_drop": _r(self.share_of_drop, 3),
                "n_baseline": self.n_baseline, "traffic_share": _r(self.traffic_share, 3),
                "q_value": _r(self.q_value, 6)}


@dataclass
class Localization:
    slices: list[SliceResult] = field(default_factory=list)  # reported, most specific first
    tested: list[SliceResult] = field(default_factory=list)
    scope: dict[str, str] = field(default_factory=dict)
    scope_share: float | None = None
    scope_traffic: float | None = None


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, nd)


def localize(cube: Cube, pre: tuple[int, int], post: tuple[int, int], *, sign: int, sigma2: float,
             phi: float = 1.0, decomposition: Decomposition | None = None,
             params: LocalizeParams | None = None) -> Localization:
    p = params or LocalizeParams()
    ncell = len(cube.cells)
    a = [cube.cell_moments(ci, *pre) for ci in range(ncell)]
    b = [cube.cell_moments(ci, *post) for ci in range(ncell)]
    contrib = [0.0] * ncell
    total = 0.0
    if decomposition is not None:
        for ce in decomposition.cells:
            contrib[ce.cell] = ce.rate + ce.mix
        total = decomposition.total
    nb_total = sum(m.n for m in b)
    dims = {k: v for k, v in cube.slice_values().items() if len(v) >= 2}

    def test(where: dict[str, str]) -> SliceResult:
        cells = cube.cells_where(where)
        ma, mb = Moments(), Moments()
        part = 0.0
        for ci in cells:
            ma.merge(a[ci])
            mb.merge(b[ci])
            part += contrib[ci]
        t = welch(ma, mb, var_floor=sigma2, inflation=phi) if ma.n and mb.n else None
        pv = 1.0
        if t is not None and mb.n >= p.min_events:
            pv = normal_sf(-sign * t.z) if t.df >= 30 else (t.p_less() if sign > 0 else t.p_greater())
        share = part / total if total and -sign * total > 0 else None
        return SliceResult(dict(where), ma.mean, mb.mean, (mb.mean - ma.mean) if ma.n and mb.n else None,
                           int(mb.n), int(ma.n), share, mb.n / nb_total if nb_total else 0.0, pv)

    singles = [test({k: v}) for k, vals in dims.items() for v in vals]
    q1 = bh_adjusted([s.p_value for s in singles])
    passed = [s for s, q in zip(singles, q1, strict=True) if q <= p.q]
    pairs: list[SliceResult] = []
    keys = sorted(dims)
    seen = set()
    for s in passed:
        (k1, v1), = s.where.items()
        for k2 in keys:
            if k2 == k1:
                continue
            for v2 in dims[k2]:
                where = dict(sorted({k1: v1, k2: v2}.items()))
                tag = tuple(where.items())
                if tag in seen:
                    continue
                seen.add(tag)
                pairs.append(test(where))
    family = singles + pairs
    qs = bh_adjusted([s.p_value for s in family])
    for s, q in zip(family, qs, strict=True):
        s.q_value = q
        s.significant = q <= p.q and s.share_of_drop is not None and s.share_of_drop >= p.min_share
    single_share = {tuple(s.where.items())[0]: (s.share_of_drop or 0.0) for s in singles}
    good_pairs = []
    for s in pairs:
        if not s.significant:
            continue
        parents = [single_share.get(item, 0.0) for item in s.where.items()]
        if (s.share_of_drop or 0.0) >= p.pair_share_of_parent * max(parents):
            good_pairs.append(s)
    good_singles = [s for s in singles if s.significant]
    good_pairs.sort(key=lambda s: -(s.share_of_drop or 0))
    good_singles.sort(key=lambda s: -(s.share_of_drop or 0))
    loc = Localization(slices=good_pairs + good_singles, tested=family)
    _choose_scope(loc, good_pairs + good_singles, cube, a, b, sign, sigma2, phi, p)
    if loc.scope:
        m = max(1, len(loc.slices))
        loc.slices = [s for s in loc.slices if not _explained_by_scope(s, loc.scope, cube, a, b, sign,
                                                                        sigma2, phi, p.q / m)]
    loc.slices = loc.slices[: p.max_rows]
    return loc


def _explained_by_scope(s: SliceResult, scope: dict, cube: Cube, a: list[Moments], b: list[Moments],
                        sign: int, sigma2: float, phi: float, level: float) -> bool:
    """A slice that only looks bad because it contains part of the scope (persona=casual when
    the drop is language=de): without the scope's cells, is it still clearly worse?"""
    items = set(s.where.items())
    scope_items = set(scope.items())
    if items <= scope_items or scope_items <= items:
        return False
    scope_cells = set(cube.cells_where(scope))
    ma, mb = Moments(), Moments()
    for ci in cube.cells_where(s.where):
        if ci not in scope_cells:
            ma.merge(a[ci])
            mb.merge(b[ci])
    t = welch(ma, mb, var_floor=sigma2, inflation=phi) if ma.n and mb.n else None
    return t is None or normal_sf(-sign * t.z) > level


def _choose_scope(loc: Localization, candidates: list[SliceResult], cube: Cube, a: list[Moments],
                  b: list[Moments], sign: int, sigma2: float, phi: float, p: LocalizeParams) -> None:
    """The most concentrated slice carrying most of the drop, if the drop outside it is clearly
    smaller than inside (a difference-in-differences z >= 3)."""
    best = None
    for s in candidates:
        share = s.share_of_drop or 0.0
        if share < p.scope_share or s.traffic_share > p.scope_max_traffic or s.delta is None:
            continue
        inside = set(cube.cells_where(s.where))
        oa, ob = Moments(), Moments()
        for ci in range(len(cube.cells)):
            if ci not in inside:
                oa.merge(a[ci])
                ob.merge(b[ci])
        out = welch(oa, ob, var_floor=sigma2, inflation=phi) if oa.n and ob.n else None
        if out is None:
            continue
        inn = welch(Moments(s.n_baseline, s.baseline * s.n_baseline, 0.0),
                    Moments(s.n, s.current * s.n, 0.0), var_floor=sigma2, inflation=phi)
        if inn is None:
            continue
        did = (inn.diff - out.diff) / math.sqrt(inn.se ** 2 + out.se ** 2) if inn.se or out.se else 0.0
        if -sign * did < 3.0:
            continue
        lift = share / max(s.traffic_share, 1e-9)
        key = (lift, len(s.where))
        if best is None or key > best[0]:
            best = (key, s)
    if best is not None:
        s = best[1]
        loc.scope = dict(s.where)
        loc.scope_share = s.share_of_drop
        loc.scope_traffic = s.traffic_share
