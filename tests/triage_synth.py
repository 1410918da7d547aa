"""Small synthetic cubes with known ground truth for the triage analysis tests (seeded; the
analysis itself has no randomness)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from oncall_ai.analysis.cube import Cube

HOUR = 3_600_000
T0 = 1_790_000_000_000 - (1_790_000_000_000 % (24 * HOUR))  # a UTC midnight in 2026


@dataclass
class Synth:
    seed: int = 1
    days: float = 8.0
    bucket_ms: int = HOUR
    per_hour: float = 60.0  # judged events per hour (whole feature, at the diurnal mean)
    diurnal: float = 0.5  # +-50 % volume over the day
    personas: tuple = ("casual", "legal", "dev")
    languages: tuple = ("en", "de", "ja")
    weights: dict = field(default_factory=lambda: {"en": 0.6, "de": 0.25, "ja": 0.15})
    base: float = 4.2
    effects: dict = field(default_factory=lambda: {"ja": -0.5, "legal": -0.2})
    sd: float = 0.9
    binary: bool = False
    # incident
    onset: int | None = None  # epoch ms
    drop: float = 0.0
    where: dict = field(default_factory=dict)  # slice filter of the drop, {} = everywhere
    mix_shift: dict = field(default_factory=dict)  # {"ja": 3.0}: traffic multiplier after onset
    versions: dict = field(default_factory=dict)  # {"prompt_version": ("old", "new", at_ms)}

    @property
    def start(self) -> int:
        return T0

    @property
    def end(self) -> int:
        return T0 + int(self.days * 24 * HOUR)

    def cells(self):
        return [(("language", lang), ("persona", p)) for p in self.personas for lang in self.languages]

    def build(self) -> Cube:
        rng = random.Random(self.seed)
        cube = Cube.empty(self.start, self.end, self.bucket_ms)
        cell_ids = [cube.cell_id(c) for c in self.cells()]
        for b in range(cube.n_buckets):
            t = cube.time_of(b)
            hour = (t // HOUR) % 24
            vol = self.per_hour * (1 + self.diurnal * math.sin(2 * math.pi * hour / 24)) * self.bucket_ms / HOUR
            after = self.onset is not None and t >= self.onset
            wl = dict(self.weights)
            if after and self.mix_shift:
                for k, f in self.mix_shift.items():
                    wl[k] = wl[k] * f
                tot = sum(wl.values())
                wl = {k: v / tot for k, v in wl.items()}
            for ci, cell in zip(cell_ids, self.cells(), strict=True):
                d = dict(cell)
                lam = vol * wl[d["language"]] / len(self.personas)
                n = _poisson(rng, lam)
                if not n:
                    continue
                mu = self.base + self.effects.get(d["language"], 0) + self.effects.get(d["persona"], 0)
                if after and all(d.get(k) == v for k, v in self.where.items()):
                    mu -= self.drop
                versions = [None, None, None, None]
                for fname, (old, new, at) in self.versions.items():
                    from oncall_ai.analysis.cube import VERSION_FIELDS

                    versions[VERSION_FIELDS.index(fname)] = new if t >= at else old
                s = ss = 0.0
                for _ in range(n):
                    if self.binary:
                        v = 1.0 if rng.random() < mu else 0.0
                    else:
                        v = min(5.0, max(1.0, round(rng.gauss(mu, self.sd))))
                    s += v
                    ss += v * v
                cube.add(ci, b, n, s, ss, tuple(versions))
        return cube


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    L, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= L:
            return k
        k += 1
