"""Rate effect vs mix effect: did quality drop inside slices, or did traffic move between them?

Kitagawa (1955) midpoint decomposition over slice cells, exact and order-free
(statistics.md section 4.1):

    R_B - R_A = sum_c wbar_c (r_c^B - r_c^A)  +  sum_c (rbar_c - Rbar) (w_c^B - w_c^A)
              = rate effect                  +  mix effect

(centring the mix term on Rbar changes nothing in the total, because the weight changes sum to
zero, but makes each cell's share of the mix effect meaningful). Weights are traffic shares of
the metric's events; rates are cell means. A drop that is mostly mix becomes an `input_shift`
hypothesis naming the slice value that grew.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from oncall_ai.analysis.cube import Cube
from oncall_ai.analysis.stats import Moments, normal_sf


@dataclass
class CellEffect:
    cell: int
    rate: float  # this cell's part of the rate effect
    mix: float  # this cell's part of the mix effect
    w_a: float
    w_b: float
    r_a: float
    r_b: float
    n_a: float
    n_b: float


@dataclass
class Grew:
    """The slice value whose traffic growth carries most of the mix effect."""

    key: str
    value: str
    share_before: float
    share_after: float
    mean: float  # its mean (both periods) against the overall mean
    overall: float
    effect: float  # its part of the mix effect, metric units

    @property
    def target(self) -> str:
        return f"{self.key}={self.value}"


@dataclass
class Decomposition:
    total: float
    rate: float
    mix: float
    rate_se: float
    mix_se: float
    cells: list[CellEffect] = field(default_factory=list)
    grew: Grew | None = None
    by_value: dict = field(default_factory=dict)  # (key, value) -> (rate part, mix part)

    @property
    def rate_z(self) -> float:
        return self.rate / self.rate_se if self.rate_se > 0 else 0.0

    @property
    def mix_z(self) -> float:
        return self.mix / self.mix_se if self.mix_se > 0 else 0.0

    def mix_share(self) -> float:
        """Share of the total change carried by the mix effect (0 when nothing moved)."""
        if self.total == 0:
            return 0.0
        return self.mix / self.total

    def is_mostly_mix(self, sign: int) -> bool:
        """A bad move mostly explained by traffic moving between slices, with the rate effect
        not clearly bad on its own."""
        bad_mix = -sign * self.mix
        bad_rate = -sign * self.rate
        return (bad_mix > 0 and -sign * self.mix_z > 3.0 and bad_mix >= 0.5 * max(-sign * self.total, 1e-12)
                and (-sign * self.rate_z < 3.0 or bad_rate < 0.5 * bad_mix))

    def mix_p(self, sign: int) -> float:
        return normal_sf(-sign * self.mix_z)

    def rate_p(self, sign: int) -> float:
        return normal_sf(-sign * self.rate_z)


def kitagawa(cube: Cube, pre: tuple[int, int], post: tuple[int, int], *, sigma2: float,
             phi: float = 1.0, phi_mix: float = 1.0, sign: int = 1) -> Decomposition | None:
    """Decompose mean(post) - mean(pre) over the cube's cells (bucket index windows)."""
    a = [cube.cell_moments(ci, *pre) for ci in range(len(cube.cells))]
    b = [cube.cell_moments(ci, *post) for ci in range(len(cube.cells))]
    na, nb = sum(m.n for m in a), sum(m.n for m in b)
    if na <= 0 or nb <= 0:
        return None
    ra_tot = sum(m.s for m in a) / na
    rb_tot = sum(m.s for m in b) / nb
    rbar_tot = (ra_tot + rb_tot) / 2
    cells: list[CellEffect] = []
    rate = mix = 0.0
    var_rate = 0.0
    var_mix = 0.0
    for ci, (ma, mb) in enumerate(zip(a, b, strict=True)):
        if not ma.n and not mb.n:
            continue
        wa, wb = ma.n / na, mb.n / nb
        # A cell seen in one period only has no rate change of its own: use its other rate.
        r_a = ma.mean if ma.n else mb.mean
        r_b = mb.mean if mb.n else ma.mean
        wbar, rbar = (wa + wb) / 2, (r_a + r_b) / 2
        re = wbar * (r_b - r_a)
        me = (rbar - rbar_tot) * (wb - wa)
        rate += re
        mix += me
        if ma.n and mb.n:
            var_rate += wbar * wbar * sigma2 * phi * (1 / ma.n + 1 / mb.n)
        # Multinomial variance of the weight change (covariances ignored: conservative enough).
        var_mix += (rbar - rbar_tot) ** 2 * (wa * (1 - wa) / na + wb * (1 - wb) / nb)
        cells.append(CellEffect(ci, re, me, wa, wb, r_a, r_b, ma.n, mb.n))
    dec = Decomposition(rb_tot - ra_tot, rate, mix, math.sqrt(var_rate), math.sqrt(var_mix * phi_mix), cells)
    dec.by_value, dec.grew = _by_value(cube, a, b, na, nb, rbar_tot, sign)
    return dec


def _by_value(cube: Cube, a: list[Moments], b: list[Moments], na: float, nb: float,
              rbar_tot: float, sign: int) -> tuple[dict, Grew | None]:
    """One-dimension Kitagawa per slice key: each value's rate and mix parts. The value whose
    growth carries the largest mix effect in the bad direction is `grew`."""
    out: dict = {}
    best: Grew | None = None
    for key, values in cube.slice_values().items():
        if len(values) < 2:
            continue
        for v in values:
            cells = cube.cells_where({key: v})
            ma, mb = Moments(), Moments()
            for ci in cells:
                ma.merge(a[ci])
                mb.merge(b[ci])
            if not ma.n and not mb.n:
                continue
            wa, wb = ma.n / na, mb.n / nb
            r_a = ma.mean if ma.n else mb.mean
            r_b = mb.mean if mb.n else ma.mean
            rbar = (r_a + r_b) / 2
            me = (rbar - rbar_tot) * (wb - wa)
            re = (wa + wb) / 2 * (r_b - r_a)
            out[(key, v)] = (re, me)
            if wb > wa and -sign * me > 0 and (best is None or -sign * me > -sign * best.effect):
                best = Grew(key, v, wa, wb, rbar, rbar_tot, me)
    return out, best
