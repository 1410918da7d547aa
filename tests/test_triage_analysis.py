"""Triage analysis as pure functions: detection, onset, localisation, decomposition, statistics."""

from __future__ import annotations

import math
import random

import pytest

from oncall_ai.analysis.cube import Cube
from oncall_ai.analysis.decompose import kitagawa
from oncall_ai.analysis.detect import (
    DetectParams,
    detect_regression,
    fit_reference,
    onset_support,
    refine_onset,
    scan_step,
)
from oncall_ai.analysis.localize import localize
from oncall_ai.analysis.stats import (
    Moments,
    benjamini_hochberg,
    bh_adjusted,
    newcombe_diff,
    normal_sf,
    sample_size_for_diff,
    t_sf,
    welch,
)
from triage_synth import HOUR, Synth

MIN = 60_000
ONSET = Synth().end - 10 * HOUR - 17 * MIN


def _detect(s: Synth, **kw):
    cube = s.build()
    return cube, detect_regression(cube, window_start=s.end - 24 * HOUR, at=s.end,
                                   higher_is_better=kw.pop("higher", True), **kw)


# --- statistics --------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_bh_adjusted_agrees_with_bh_rejections(seed):
    rng = random.Random(seed)
    ps = [rng.random() ** 3 for _ in range(30)]
    adj = bh_adjusted(ps)
    assert [a <= 0.05 for a in adj] == benjamini_hochberg(ps, 0.05)
    assert all(a >= p for a, p in zip(adj, ps, strict=True))


def test_bh_adjusted_known_values():
    # m=4: p*(m/rank) with step-up monotonicity.
    assert bh_adjusted([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.0533333, 0.0533333, 0.5], rel=1e-5)


@pytest.mark.parametrize("x,expected", [(0.0, 0.5), (1.959963984540054, 0.025), (10.0, 7.619853024160527e-24)])
def test_normal_sf(x, expected):
    assert normal_sf(x) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("t,df,expected", [(2.0, 10, 0.036694017385370196), (1.0, 3, 0.19550110947788532)])
def test_t_sf(t, df, expected):
    assert t_sf(t, df) == pytest.approx(expected, rel=1e-6)


def test_welch_matches_hand_computation():
    a = Moments(10, 40.0, 170.0)  # mean 4, var (170-160)/9
    b = Moments(20, 70.0, 260.0)  # mean 3.5, var (260-245)/19
    t = welch(a, b)
    va, vb = 10 / 9, 15 / 19
    se = math.sqrt(va / 10 + vb / 20)
    assert t.diff == pytest.approx(-0.5)
    assert t.se == pytest.approx(se)
    assert t.z == pytest.approx(-0.5 / se)
    df = (va / 10 + vb / 20) ** 2 / ((va / 10) ** 2 / 9 + (vb / 20) ** 2 / 19)
    assert t.df == pytest.approx(df)
    lo, hi = t.ci()
    assert lo < -0.5 < hi
    # inflation scales the standard error by sqrt(phi)
    assert welch(a, b, inflation=4.0).se == pytest.approx(2 * se)


def test_newcombe_contains_difference_and_is_asymmetric_near_zero():
    lo, hi = newcombe_diff(2, 100, 10, 100)
    assert lo < -0.08 < hi
    assert hi < 0


@pytest.mark.parametrize("sd,delta", [(1.0, 0.1), (0.5, 0.2), (2.0, 1.0)])
def test_sample_size_grows_with_noise_over_effect(sd, delta):
    n = sample_size_for_diff(sd, delta)
    n2 = sample_size_for_diff(sd, delta / 2)
    assert n2 == pytest.approx(4 * n, rel=0.01)


# --- detection ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(12))
def test_noise_only_day_is_not_a_regression(seed):
    # ordinary diurnal volume, ordinary slice mix, nothing happens
    _, det = _detect(Synth(seed=seed))
    assert det.detected is False
    assert det.verdict == "no_regression"
    assert det.p_value is None or det.p_value >= 0.001


@pytest.mark.parametrize("seed", range(6))
def test_noise_only_binary_metric_with_big_counts_is_not_a_regression(seed):
    # 100 %-traffic 0/1 check: thousands an hour
    s = Synth(seed=seed, binary=True, base=0.9, effects={"ja": -0.05}, per_hour=2000, days=4)
    _, det = _detect(s)
    assert det.detected is False


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("case", ["global", "slice", "pair", "lower_is_better"])
def test_regressions_are_detected_with_onset_near_truth(seed, case):
    if case == "global":
        s = Synth(seed=seed, onset=ONSET, drop=0.35, per_hour=120)
    elif case == "slice":
        s = Synth(seed=seed, onset=ONSET, drop=0.9, where={"language": "de"}, per_hour=120)
    elif case == "pair":
        s = Synth(seed=seed, onset=ONSET, drop=1.5, where={"language": "de", "persona": "legal"}, per_hour=200)
    else:  # thumbs-down rate going up
        s = Synth(seed=seed, onset=ONSET, drop=-0.04, binary=True, base=0.05, effects={}, per_hour=1500)
    _, det = _detect(s, higher=case != "lower_is_better")
    assert det.detected, det.reason
    assert det.verdict == "regression"
    assert det.p_value < 0.001
    assert abs(det.onset - ONSET) <= 2 * HOUR
    sign = -1 if case == "lower_is_better" else 1
    assert sign * det.delta < 0


def test_improvement_is_not_a_regression():
    _, det = _detect(Synth(seed=3, onset=ONSET, drop=-0.5, per_hour=120))
    assert det.detected is False


@pytest.mark.parametrize("seed", range(4))
def test_recovered_drop_is_reported_as_recovered(seed):
    s = Synth(seed=seed, onset=ONSET, drop=0.8, per_hour=150)
    cube = s.build()
    # undo the drop for the last 5 hours by rebuilding those buckets without it
    s2 = Synth(seed=seed + 100, per_hour=150)
    clean = s2.build()
    cut = cube.boundary(s.end - 5 * HOUR)
    for ci in range(len(cube.cells)):
        cj = clean.cell_id(cube.cells[ci])
        for b in range(cut, cube.n_buckets):
            cube.n[ci][b], cube.s[ci][b], cube.ss[ci][b] = clean.n[cj][b], clean.s[cj][b], clean.ss[cj][b]
    det = detect_regression(cube, window_start=s.end - 24 * HOUR, at=s.end)
    assert det.detected is False
    assert det.verdict == "recovered"
    assert det.recovered_at is not None


@pytest.mark.parametrize("per_hour", [0.3, 1.0])
def test_too_little_data_says_how_much_is_needed(per_hour):
    s = Synth(seed=1, per_hour=per_hour, onset=ONSET, drop=1.0)
    _, det = _detect(s)
    assert det.detected is False
    assert det.verdict == "insufficient_data"
    assert det.needed_n and det.needed_n > det.current.n
    assert "needed" in det.reason


def test_empty_cube_is_insufficient_data_not_a_crash():
    cube = Cube.empty(0, 24 * HOUR, HOUR)
    det = detect_regression(cube, window_start=12 * HOUR, at=24 * HOUR)
    assert det.verdict == "insufficient_data"


def test_no_history_before_window_still_works():
    s = Synth(seed=2, days=1.0, onset=Synth(days=1.0).end - 8 * HOUR, drop=0.6, per_hour=200)
    cube = s.build()
    det = detect_regression(cube, window_start=s.start, at=s.end)
    assert det.detected
    assert abs(det.onset - (s.end - 8 * HOUR)) <= 2 * HOUR


def test_mix_shift_is_detected_as_mix_signal():
    _, det = _detect(Synth(seed=4, onset=ONSET, mix_shift={"ja": 3.0}, per_hour=120))
    assert det.detected
    assert det.signal == "mix"


@pytest.mark.parametrize("alpha", [0.01, 0.001, 0.0001])
def test_alpha_controls_threshold(alpha):
    _, det = _detect(Synth(seed=5, onset=ONSET, drop=0.35, per_hour=120), params=DetectParams(alpha=alpha))
    assert det.detected == (det.p_value < alpha)


# --- change-point pieces ----------------------------------------------------------------------------

@pytest.mark.parametrize("tau_true", [5, 12, 20])
def test_scan_step_finds_a_clean_step(tau_true):
    y = [0.0] * tau_true + [-1.0] * (30 - tau_true)
    w = [10.0] * 30
    tau, z, delta, prof = scan_step(y, w, pre_start=0, lo=1, hi=30, end=30, sign=1)
    assert tau == tau_true
    assert delta == pytest.approx(-1.0)
    assert z > 5
    lo, hi = onset_support(prof, z)
    assert lo <= tau_true <= hi


def test_scan_step_ignores_improvements():
    y = [0.0] * 10 + [1.0] * 10
    tau, z, _, _ = scan_step(y, [5.0] * 20, pre_start=0, lo=1, hi=20, end=20, sign=1)
    assert z <= 0


@pytest.mark.parametrize("offset_min", [5, 23, 41])
def test_refine_onset_on_fine_buckets(offset_min):
    onset = Synth().end - 6 * HOUR + offset_min * MIN
    s = Synth(seed=7, onset=onset, drop=1.0, per_hour=400)
    coarse = s.build()
    ref = fit_reference(coarse, 0, coarse.bucket_of(onset))
    fine = Synth(seed=8, onset=onset, drop=1.0, per_hour=400, bucket_ms=5 * MIN).build()
    got = refine_onset(fine, ref.mu_by_cell(coarse), ref.sigma2, ref.phi, sign=1, level=-1.0,
                       lo_ms=onset - 2 * HOUR, hi_ms=onset + HOUR)
    assert got is not None
    t, (lo, hi) = got
    assert abs(t - onset) <= 10 * MIN
    assert lo <= t < hi


# --- decomposition --------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("kind", ["rate", "mix", "both", "none"])
def test_kitagawa_is_exact(seed, kind):
    s = Synth(seed=seed, onset=ONSET, drop=0.4 if kind in ("rate", "both") else 0.0,
              mix_shift={"ja": 3.0} if kind in ("mix", "both") else {}, per_hour=100)
    cube = s.build()
    tb = cube.bucket_of(ONSET) + 1
    dec = kitagawa(cube, (0, tb), (tb, cube.n_buckets), sigma2=0.8)
    pre, post = cube.moments(0, tb), cube.moments(tb, cube.n_buckets)
    assert dec.rate + dec.mix == pytest.approx(post.mean - pre.mean, abs=1e-9)
    assert dec.total == pytest.approx(post.mean - pre.mean, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_mix_shift_is_mostly_mix_and_names_the_slice_that_grew(seed):
    cube = Synth(seed=seed, onset=ONSET, mix_shift={"ja": 3.0}, per_hour=150).build()
    tb = cube.bucket_of(ONSET) + 1
    dec = kitagawa(cube, (0, tb), (tb, cube.n_buckets), sigma2=0.8)
    assert dec.is_mostly_mix(1)
    assert dec.grew.target == "language=ja"
    assert dec.grew.share_after > dec.grew.share_before


@pytest.mark.parametrize("seed", range(5))
def test_rate_drop_is_not_mostly_mix(seed):
    cube = Synth(seed=seed, onset=ONSET, drop=0.4, per_hour=150).build()
    tb = cube.bucket_of(ONSET) + 1
    dec = kitagawa(cube, (0, tb), (tb, cube.n_buckets), sigma2=0.8)
    assert not dec.is_mostly_mix(1)
    assert dec.rate < 0


# --- localisation ---------------------------------------------------------------------------------------

def _localize(s: Synth):
    cube = s.build()
    det = detect_regression(cube, window_start=s.end - 24 * HOUR, at=s.end)
    assert det.detected
    ref, tb = det.reference, det.onset_bucket
    dec = kitagawa(cube, (0, tb), (tb, cube.n_buckets), sigma2=ref.sigma2, phi=ref.phi)
    return localize(cube, (0, tb), (tb, cube.n_buckets), sign=1, sigma2=ref.sigma2, phi=ref.phi,
                    decomposition=dec)


@pytest.mark.parametrize("seed", range(5))
def test_slice_drop_is_localized_to_that_slice(seed):
    loc = _localize(Synth(seed=seed, onset=ONSET, drop=0.9, where={"language": "de"}, per_hour=120))
    assert loc.scope == {"language": "de"}
    assert loc.slices[0].where == {"language": "de"}
    assert loc.slices[0].share_of_drop > 0.6
    # slices of other dimensions that only contain part of language=de are explained away
    assert all("persona" not in s.where or "language" in s.where for s in loc.slices)


@pytest.mark.parametrize("seed", range(5))
def test_pair_drop_reports_the_pair(seed):
    loc = _localize(Synth(seed=seed, onset=ONSET, drop=1.5, where={"language": "de", "persona": "legal"},
                          per_hour=200))
    assert loc.scope == {"language": "de", "persona": "legal"}
    assert loc.slices[0].where == {"language": "de", "persona": "legal"}


@pytest.mark.parametrize("seed", range(5))
def test_global_drop_has_no_scope(seed):
    loc = _localize(Synth(seed=seed, onset=ONSET, drop=0.4, per_hour=150))
    assert loc.scope == {}
    for s in loc.slices:
        assert s.q_value <= 0.05
        assert s.share_of_drop >= 0.1


# --- 0/1 metrics with a rare outcome, step tests at known change times ---------------------------

def test_binomial_signed_root_is_near_the_exact_tail_where_wald_is_not():
    from oncall_ai.analysis.stats import binomial_signed_root, z_quantile

    # 3 failures in 11 events at a 1.2 % failure rate: exact P(X >= 3) = 2.9e-4 (z 3.44)
    exact = sum(math.comb(11, k) * 0.012 ** k * 0.988 ** (11 - k) for k in range(3, 12))
    z_exact = z_quantile(1 - exact)
    wald = (3 / 11 - 0.012) / math.sqrt(0.012 * 0.988 / 11)
    r = binomial_signed_root(3, 11, 0.012)
    assert wald > 7
    assert abs(r - z_exact) < 0.5 and r <= z_exact + 0.1
    # large counts: close to the Wald z, and the sign follows the direction
    assert binomial_signed_root(600, 10_000, 0.05) == pytest.approx(
        (0.06 - 0.05) / math.sqrt(0.05 * 0.95 / 10_000), rel=0.1)
    assert binomial_signed_root(400, 10_000, 0.05) < 0
    assert binomial_signed_root(5, 100, 0.05) == 0.0


def _rare_failures_at_the_end(seed: int) -> Cube:
    """A 1 % failure check on every request, and a handful of chance failures in the last,
    short bucket of one small slice."""
    s = Synth(seed=seed, binary=True, base=0.99, effects={}, per_hour=1500, days=5)
    cube = s.build()
    ci = cube.cells_where({"language": "ja", "persona": "dev"})[0]
    b = cube.n_buckets - 1
    cube.n[ci][b], cube.s[ci][b], cube.ss[ci][b] = 11.0, 8.0, 8.0  # 3 failures in 11 events
    cube.rows.append(type(cube.rows[0])(ci, b, 11.0, 8.0, 8.0, (None, None, None, None)))
    return cube


@pytest.mark.parametrize("seed", range(3))
def test_a_few_rare_failures_in_a_short_window_are_not_a_regression(seed):
    cube = _rare_failures_at_the_end(seed)
    end = cube.time_of(cube.n_buckets)
    det = detect_regression(cube, window_start=end - 24 * HOUR, at=end)
    assert cube.is_binary()
    assert det.detected is False, (det.reason, det.p_value, det.scope)


def test_step_test_at_a_known_change_finds_a_small_slice_drop_the_free_scan_misses():
    from oncall_ai.analysis.detect import Anchor

    found = {"scan": 0, "anchor": 0}
    for seed in range(8):
        s = Synth(seed=seed, onset=ONSET, drop=0.7, where={"language": "ja"}, per_hour=40)
        cube = s.build()
        free = detect_regression(cube, window_start=s.end - 24 * HOUR, at=s.end)
        anchored = detect_regression(cube, window_start=s.end - 24 * HOUR, at=s.end,
                                     anchors=[Anchor(ONSET - 5 * MIN, (("language", "ja"),), "c1"),
                                              Anchor(ONSET - 3 * HOUR, (), "c0")])
        found["scan"] += free.detected
        found["anchor"] += anchored.detected
        if anchored.detected and anchored.anchor is not None:
            assert anchored.anchor.label == "c1"
            assert abs(anchored.onset - ONSET) <= HOUR
    assert found["anchor"] > found["scan"]


@pytest.mark.parametrize("seed", range(10))
def test_step_tests_at_harmless_changes_keep_noise_quiet(seed):
    from oncall_ai.analysis.detect import Anchor

    s = Synth(seed=seed)
    cube = s.build()
    anchors = [Anchor(s.end - h * HOUR - 7 * MIN, scope, f"c{h}")
               for h in (2, 6, 11, 19) for scope in ((), (("language", "ja"),))]
    det = detect_regression(cube, window_start=s.end - 24 * HOUR, at=s.end, anchors=anchors)
    assert det.detected is False


def test_family_splits_alpha_over_the_pairs_of_a_scan():
    s = Synth(seed=5, onset=ONSET, drop=0.35, per_hour=120)
    cube = s.build()
    one = detect_regression(cube, window_start=s.end - 24 * HOUR, at=s.end)
    nine = detect_regression(cube, window_start=s.end - 24 * HOUR, at=s.end, params=DetectParams(family=9))
    assert nine.p_value == pytest.approx(min(1.0, one.p_value * 9), rel=1e-6)


def test_one_quiet_hour_is_not_a_recovery():
    s = Synth(seed=1, onset=ONSET, drop=0.8, per_hour=150)
    cube = s.build()
    clean = Synth(seed=101, per_hour=150).build()
    b = cube.n_buckets - 1  # only the last hour back at baseline
    for ci in range(len(cube.cells)):
        cj = clean.cell_id(cube.cells[ci])
        cube.n[ci][b], cube.s[ci][b], cube.ss[ci][b] = clean.n[cj][b], clean.s[cj][b], clean.ss[cj][b]
    det = detect_regression(cube, window_start=s.end - 24 * HOUR, at=s.end)
    assert det.verdict == "regression"


def test_a_traffic_shift_still_under_way_is_not_recovered_but_one_that_ended_is():
    from oncall_ai.analysis.detect import _mix_persists, fit_reference

    s = Synth(seed=4, onset=ONSET, mix_shift={"ja": 3.0}, per_hour=120)
    cube = s.build()
    iw0 = cube.boundary(s.end - 24 * HOUR)
    ref = fit_reference(cube, 0, iw0)
    tau = cube.boundary(ONSET)
    t3 = cube.n_buckets - 4
    assert _mix_persists(cube, ref, tau, t3)  # ja still three times its usual share
    clean = Synth(seed=104, per_hour=120).build()
    for ci in range(len(cube.cells)):
        cj = clean.cell_id(cube.cells[ci])
        for b in range(t3, cube.n_buckets):
            cube.n[ci][b], cube.s[ci][b], cube.ss[ci][b] = clean.n[cj][b], clean.s[cj][b], clean.ss[cj][b]
    assert not _mix_persists(cube, ref, tau, t3)  # back to the usual mix


# --- evidence from the other metrics a change reaches; suspected drops ---------------------------

@pytest.mark.parametrize("x,df,expected", [(9.487729, 4, 0.05), (13.276704, 4, 0.01), (12.591587, 6, 0.05),
                                           (5.991465, 2, 0.05)])
def test_chi2_sf_even_matches_table_critical_values(x, df, expected):
    from oncall_ai.analysis.stats import chi2_sf_even

    assert chi2_sf_even(x, df) == pytest.approx(expected, rel=1e-5)


def test_whiten_undoes_a_known_correlation():
    from oncall_ai.analysis.stats import whiten

    r = 0.6
    assert whiten([2.0, 3.0], [[1, r], [r, 1]]) == pytest.approx([2.0, (3.0 - r * 2.0) / math.sqrt(1 - r * r)])
    # Correlated N(0,1) pairs come out uncorrelated with unit variance.
    rng = random.Random(3)
    out = []
    for _ in range(4000):
        a = rng.gauss(0, 1)
        b = r * a + math.sqrt(1 - r * r) * rng.gauss(0, 1)
        out.append(whiten([a, b], [[1, r], [r, 1]]))
    cov = sum(x * y for x, y in out) / len(out)
    var_b = sum(y * y for _, y in out) / len(out)
    assert abs(cov) < 0.05 and abs(var_b - 1) < 0.06


def _companion(s: Synth, metric: str = "thumbs", labels=("c1",)):
    from oncall_ai.analysis.detect import Companion

    return Companion("f", metric, True, frozenset(labels), cube=s.build())


def test_a_change_seen_in_two_metrics_is_found_where_one_metric_alone_is_not_enough():
    from oncall_ai.analysis.detect import Anchor

    found = {"alone": 0, "together": 0}
    for seed in range(10):
        own = Synth(seed=seed, onset=ONSET, drop=0.5, where={"language": "de"}, per_hour=20)
        other = Synth(seed=1000 + seed, onset=ONSET, drop=0.5, where={"language": "de"}, per_hour=20)
        anchors = [Anchor(ONSET - 4 * MIN, (("language", "de"),), "c1"), Anchor(ONSET - 5 * HOUR, (), "c0")]
        kw = dict(window_start=own.end - 24 * HOUR, at=own.end, anchors=anchors)
        alone = detect_regression(own.build(), **kw)
        together = detect_regression(own.build(), companions=[_companion(other)], **kw)
        found["alone"] += alone.detected
        found["together"] += together.detected
        if together.detected and together.anchor is not None and together.support:
            assert together.anchor.label == "c1"
            assert [m for _, m, _ in together.support] == ["thumbs"]
    assert found["together"] >= found["alone"] + 2, found  # 2 -> 5 of 10 here


def test_another_metric_alone_does_not_make_a_flat_metric_a_regression():
    # A change that broke a schema check (the companion) does not make a flat judge score a
    # regression: the own metric must move at the change too.
    from oncall_ai.analysis.detect import Anchor

    for seed in range(6):
        own = Synth(seed=seed)
        other = Synth(seed=50 + seed, onset=ONSET, drop=1.5, per_hour=200)
        det = detect_regression(own.build(), window_start=own.end - 24 * HOUR, at=own.end,
                                anchors=[Anchor(ONSET, (), "c1")], companions=[_companion(other)])
        assert det.detected is False, (seed, det.p_value)


def test_combined_evidence_keeps_noise_days_at_their_level():
    # Noise in both metrics, a harmless change: the anchor's p-value (the smaller of its own and
    # the combined one, times 2 for looking at both) is small no more often than its own p-value
    # alone, give or take sampling: combining does not buy false alarms.
    from oncall_ai.analysis.detect import Anchor

    own_small = comb_small = 0
    n = 100
    for seed in range(n):
        own, other = Synth(seed=seed, per_hour=40), Synth(seed=500 + seed, per_hour=40)
        det = detect_regression(own.build(), window_start=own.end - 24 * HOUR, at=own.end,
                                params=DetectParams(scan_slices=False),
                                anchors=[Anchor(ONSET, (), "c1")], companions=[_companion(other)])
        [scan] = [x for x in det.scans if x.kind == "anchor"]
        own_small += (scan.p_own if scan.p_own is not None else scan.p_one) < 0.1
        comb_small += min(1.0, scan.p_one * scan.tests) < 0.1
        assert det.detected is False
    assert comb_small <= own_small + 3 and comb_small <= 0.2 * n, (own_small, comb_small)


def test_a_drop_between_alpha_and_the_suspect_level_is_suspected_not_detected():
    s = Synth(seed=4, onset=ONSET, drop=0.15, per_hour=60)
    cube, det = _detect(s)
    assert det.detected is False and det.verdict == "suspected"
    assert 0.001 <= det.p_value < 0.1
    assert abs(det.onset - ONSET) <= 3 * HOUR  # a weak step: its onset is loose too
    assert det.needed_more and det.needed_more > 0
    assert "not beyond noise yet" in det.reason and "more events" in det.reason
    # The tier can be turned off.
    _, off = _detect(s, params=DetectParams(suspect_alpha=0.0))
    assert off.verdict == "no_regression" and off.onset is None


def test_a_suspected_finding_in_json_and_in_the_report():
    from rich.console import Console

    from oncall_ai.analysis.finding import Finding, envelope
    from oncall_ai.report.triage import render_triage
    from oncall_ai.triage import TriageResult

    s = Synth(seed=4, onset=ONSET, drop=0.15, per_hour=60)
    cube, det = _detect(s)
    f = Finding("summarizer", "helpfulness", "judge", True, det)
    doc = envelope([f], at=s.end, since=s.end - 24 * HOUR)
    reg = doc["findings"][0]["regression"]
    assert reg["detected"] is False and reg["onset"] is None and reg["verdict"] == "suspected"
    assert reg["suspected_onset"] and reg["needed_more_events"] > 0
    console = Console(width=80, record=True, color_system=None)
    render_triage(TriageResult(s.end, s.end - 24 * HOUR, [f]), console)
    text = console.export_text()
    assert text.startswith("SUSPECTED, NOT CONFIRMED summarizer/helpfulness")
    assert "a regression needs p < 0.001" in text
    assert "REGRESSION" not in text.replace("NO REGRESSION", "")


def test_companions_cross_features_only_where_a_change_names_them_and_are_capped():
    from types import SimpleNamespace

    from oncall_ai.analysis.detect import Anchor, Companion
    from oncall_ai.model import Change
    from oncall_ai.triage import MAX_COMPANIONS, _companions

    metrics = {"helpfulness": "judge", "relevance": "judge", "thumbs_down": "user", "schema_valid": "check"}
    feats = ["support", "search", "summarizer", "a", "b", "c"]

    class Groups(dict):
        def complete(self):
            return self

    groups = Groups({(f, m): [SimpleNamespace(source=src)] for f in feats for m, src in metrics.items()})
    idx = Change("idx-1", "index", "kb-docs", ("support", "search"), 1000)
    everyone = Change("cfg-1", "config", "rate-limit", (), 2000)
    all_ids = frozenset({"idx-1", "cfg-1"})

    def companion(f, m):
        return Companion(f, m, m != "thumbs_down", all_ids)

    got = _companions(None, "support", "helpfulness", "judge", [Anchor(1000, (), "idx-1"), Anchor(2000, (), "cfg-1")],
                      [idx, everyone], groups, companion)
    names = [(c.feature, c.metric) for c in got]
    # The feature's own metrics first, then the named feature's same metric, then its same source.
    assert names[:3] == [("support", "relevance"), ("support", "schema_valid"), ("support", "thumbs_down")]
    assert names[3:] == [("search", "helpfulness"), ("search", "relevance"), ("search", "schema_valid")]
    assert len(got) == MAX_COMPANIONS
    # Another feature is tested only at the change that names it, not at the every-feature one.
    assert all(c.labels == {"idx-1"} for c in got if c.feature == "search")
    assert {"idx-1", "cfg-1"} <= got[0].labels
    # A change that merely defaults to every feature brings no other feature in.
    only = _companions(None, "support", "helpfulness", "judge", [Anchor(2000, (), "cfg-1")], [everyone], groups, companion)
    assert {c.feature for c in only} == {"support"}


@pytest.mark.parametrize("text,ok", [("alpha: 0.01\n  suspect_alpha: 0", True), ("suspect_alpha: 0.2", True),
                                     ("suspect_alpha: -1", False), ("suspect_alpha: yes", False),
                                     ("alpha: 0.7", False)])
def test_triage_config_alpha_and_suspect_alpha(tmp_path, text, ok):
    from oncall_ai.config import load_config
    from oncall_ai.errors import ConfigError
    from oncall_ai.triage import TriageSettings

    path = tmp_path / "oncall-ai.yaml"
    path.write_text(f"store: {tmp_path / 'x.db'}\ntriage:\n  {text}\n")
    cfg = load_config(path)
    if ok:
        st = TriageSettings.from_config(cfg)
        want = dict(x.split(": ") for x in text.replace("\n  ", ";").split(";"))
        for key, value in want.items():
            assert getattr(st.detect, key) == float(value)
    else:
        with pytest.raises(ConfigError) as e:
            TriageSettings.from_config(cfg)
        assert f"triage.{text.split(':')[0]}" in str(e.value) and str(path) in str(e.value)
