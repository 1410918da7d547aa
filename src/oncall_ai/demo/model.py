"""The traffic and quality model of the demo sandbox: features, slices, volumes, quality per
slice, judge noise, user feedback; and the expected values the ground truth is computed from.

A request has a latent quality h ~ N(mu(feature, cell) + hourly noise, H_SD). A judge scores
round(h + judge bias + N(0, JUDGE_SD)) clipped to 1..5 on JUDGE_SAMPLE_RATE of requests; a user
leaves feedback on FEEDBACK_RATE of them (thumbs_down = 1 with probability
sigmoid(THUMBS_INTERCEPT - THUMBS_SLOPE (h - 4))); summarizer's schema check runs on every request.
A cell is one (language, persona, shape) combination.
"""

from __future__ import annotations

import math

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
BUCKET = 5 * MIN


FEATURES = ("summarizer", "support", "search")
JUDGE_METRIC = {"summarizer": "helpfulness", "support": "helpfulness", "search": "relevance"}
CHECK_METRIC = {"summarizer": "schema_valid"}
PIN_KEY = {"summarizer": "summarizer", "support": "support", "search": "rerank"}
FEATURE_INDEX = {"summarizer": None, "support": "kb-docs", "search": "kb-docs"}
INDEX_USERS = {"kb-docs": ("support", "search")}

RATE_PER_HOUR = {"summarizer": 650.0, "support": 420.0, "search": 900.0}  # requests, weekday mean
DIURNAL_AMPLITUDE = {"summarizer": 0.5, "support": 0.4, "search": 0.55}
DIURNAL_PEAK_HOUR = {"summarizer": 14.0, "support": 15.5, "search": 16.0}  # UTC
WEEKDAY_FACTOR = (1.05, 1.0, 1.0, 1.0, 0.95, 0.62, 0.55)  # Monday..Sunday

BASE_QUALITY = {"summarizer": 4.12, "support": 3.92, "search": 4.02}
THUMBS_INTERCEPT = {"summarizer": -2.35, "support": -2.0, "search": -2.5}  # logit at h = 4
THUMBS_SLOPE = 1.1
H_SD = 0.7  # request-to-request quality spread
JUDGE_SD = 0.4  # judge noise around the request's quality
JUDGE_BASE_BIAS = 0.08  # judges are slightly lenient vs humans
HOURLY_NOISE_SD = 0.035  # overdispersion: hour-to-hour quality wobble per feature
JUDGE_SAMPLE_RATE = 0.1
FEEDBACK_RATE = 0.25
SCHEMA_FAIL = 0.012

LANGS = ("en", "de", "fr", "es", "ja")
LANG_SHARE = (0.55, 0.15, 0.10, 0.12, 0.08)
LANG_PEAK_HOUR = (16.0, 10.0, 11.0, 15.0, 2.0)  # UTC
LANG_AMPLITUDE = 0.45
LANG_EFFECT = (0.0, -0.25, -0.12, -0.08, -0.45)

PERSONAS = ("free", "pro", "enterprise")
PERSONA_SHARE_WEEKDAY = (0.50, 0.35, 0.15)
PERSONA_SHARE_WEEKEND = (0.60, 0.33, 0.07)
PERSONA_EFFECT = (-0.06, 0.02, 0.08)

SHAPES = ("qa", "chat", "long_doc")
SHAPE_SHARE = {"summarizer": (0.20, 0.45, 0.35), "support": (0.55, 0.35, 0.10), "search": (0.60, 0.15, 0.25)}
SHAPE_EFFECT = (0.0, 0.08, -0.40)
SCHEMA_FAIL_SHAPE = (1.0, 0.8, 2.0)

SLICE_KEYS = ("persona", "language", "shape")
_SLICE_VALUES = {"language": LANGS, "persona": PERSONAS, "shape": SHAPES}
N_CELLS = len(LANGS) * len(PERSONAS) * len(SHAPES)

def cell_index(language: int, persona: int, shape: int) -> int:
    return (language * len(PERSONAS) + persona) * len(SHAPES) + shape


def cell_slices(cell: int) -> dict[str, str]:
    shape = cell % len(SHAPES)
    persona = (cell // len(SHAPES)) % len(PERSONAS)
    language = cell // (len(SHAPES) * len(PERSONAS))
    return {"persona": PERSONAS[persona], "language": LANGS[language], "shape": SHAPES[shape]}


def cells_matching(slices: list[dict[str, str]]) -> set[int]:
    """Cells inside any of `slices` (each a {key: value} conjunction); every cell for []."""
    out = set()
    for c in range(N_CELLS):
        sl = cell_slices(c)
        if not slices or any(all(sl[k] == v for k, v in s.items()) for s in slices):
            out.add(c)
    return out


def mean_quality(feature: str) -> list[float]:
    """mu per cell (before hourly noise and incidents)."""
    out = []
    for li in range(len(LANGS)):
        for pi in range(len(PERSONAS)):
            for si in range(len(SHAPES)):
                out.append(BASE_QUALITY[feature] + LANG_EFFECT[li] + PERSONA_EFFECT[pi] + SHAPE_EFFECT[si])
    return out


def typical_mix(feature: str, overrides: dict[tuple[str, str], float] | None = None) -> list[float]:
    """The daily-average share of each cell (optionally with slice values' weight multiplied)."""
    persona = [(5 * a + 2 * b) / 7 for a, b in zip(PERSONA_SHARE_WEEKDAY, PERSONA_SHARE_WEEKEND, strict=True)]
    lang = list(LANG_SHARE)
    shape = list(SHAPE_SHARE[feature])
    for (key, value), mult in (overrides or {}).items():
        table = {"language": (lang, LANGS), "persona": (persona, PERSONAS), "shape": (shape, SHAPES)}[key]
        table[0][table[1].index(value)] *= mult
    lang, persona, shape = ([x / sum(t) for x in t] for t in (lang, persona, shape))
    return [lang[li] * persona[pi] * shape[si]
            for li in range(len(LANGS)) for pi in range(len(PERSONAS)) for si in range(len(SHAPES))]


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


SCORE_SD = math.sqrt(H_SD ** 2 + JUDGE_SD ** 2)


def expected_score(m: float) -> float:
    """E[clip(round(X), 1, 5)] for X ~ N(m, SCORE_SD): the expected judge score."""
    return 1.0 + sum(1.0 - _phi((k + 0.5 - m) / SCORE_SD) for k in range(1, 5))


def expected_good(m: float) -> float:
    """P(judge score >= 4)."""
    return 1.0 - _phi((3.5 - m) / SCORE_SD)


_GRID = [(-4.0 + 8.0 * i / 80) for i in range(81)]
_GRID_W = [math.exp(-z * z / 2) for z in _GRID]
_GRID_WSUM = sum(_GRID_W)


def expected_thumbs(feature: str, mu: float) -> float:
    """P(thumbs_down) for h ~ N(mu, H_SD)."""
    a = THUMBS_INTERCEPT[feature]
    return sum(w / (1.0 + math.exp(-(a - THUMBS_SLOPE * (mu + H_SD * z - 4.0))))
               for z, w in zip(_GRID, _GRID_W, strict=True)) / _GRID_WSUM
