"""Agreement statistics against independent computations written out by definition, and the drift
verdict on runs with known ground truth."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from oncall_ai.analysis import agreement as ag
from oncall_ai.analysis import stats
from oncall_ai.config import GoodRule

GOOD = GoodRule(">=", 4)

# Student t 0.975 quantiles from a printed table (Fisher & Yates), for the CI checks.
T975 = {9: 2.262157, 19: 2.093024, 29: 2.045230, 49: 2.009575}


def _dataset(seed: int, n: int, noise: float = 0.9, shift: float = 0.0):
    rng = random.Random(seed)
    human = [rng.randint(1, 5) for _ in range(n)]
    for level in range(1, 6):  # every level present, so index weights equal value weights
        human[level - 1] = level
    judge = [min(5, max(1, round(h + shift + rng.gauss(0, noise)))) for h in human]
    for level in range(1, 6):
        judge[-level] = level
    return judge, human


# --- independent computations ----------------------------------------------------------------

def kappa_by_definition(judge, human, k=5):
    """Cohen's kappa with quadratic weights from an explicit K x K confusion matrix."""
    n = len(judge)
    observed = [[0.0] * k for _ in range(k)]
    for j, h in zip(judge, human, strict=True):
        observed[int(j) - 1][int(h) - 1] += 1
    row = [sum(observed[i][c] for c in range(k)) for i in range(k)]
    col = [sum(observed[r][i] for r in range(k)) for i in range(k)]
    num = den = 0.0
    for i in range(k):
        for c in range(k):
            w = (i - c) ** 2 / (k - 1) ** 2
            num += w * observed[i][c] / n
            den += w * (row[i] * col[c] / n) / n
    return 1 - num / den


def ranks_by_definition(values):
    """Rank of v = 1 + (number of values below v) + (number of other values equal to v) / 2."""
    return [1 + sum(1 for u in values if u < v) + (sum(1 for u in values if u == v) - 1) / 2 for v in values]


def spearman_by_definition(x, y):
    rx, ry = ranks_by_definition(x), ranks_by_definition(y)
    n = len(x)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))


@pytest.mark.parametrize("seed,n,noise,shift", [(1, 30, 0.5, 0.0), (2, 50, 1.0, -0.5), (3, 20, 1.5, 0.3),
                                                (4, 200, 0.7, 0.0), (5, 10, 0.2, 1.0)])
def test_kappa_matches_confusion_matrix_definition(seed, n, noise, shift):
    judge, human = _dataset(seed, n, noise, shift)
    assert ag.quadratic_weighted_kappa(judge, human) == pytest.approx(kappa_by_definition(judge, human), abs=1e-12)


def test_kappa_extremes():
    h = [1, 2, 3, 4, 5, 3, 2]
    assert ag.quadratic_weighted_kappa(h, h) == pytest.approx(1.0)
    assert ag.quadratic_weighted_kappa([6 - x for x in h], h) < 0  # reversed scale: worse than chance
    assert ag.quadratic_weighted_kappa([3, 3, 3], [3, 3, 3]) is None  # undefined, not a number


@pytest.mark.parametrize("seed,n", [(1, 12), (2, 40), (3, 7), (4, 300)])
def test_spearman_matches_rank_definition_with_ties(seed, n):
    judge, human = _dataset(seed, max(n, 10))
    assert stats.spearman(judge, human) == pytest.approx(spearman_by_definition(judge, human), abs=1e-12)


def test_spearman_without_ties_matches_textbook_formula():
    x = [3.1, 1.2, 5.5, 2.0, 4.4, 0.3, 9.9]
    y = [2.0, 1.0, 7.0, 3.5, 3.0, 0.1, 6.0]
    rx, ry = ranks_by_definition(x), ranks_by_definition(y)
    n = len(x)
    rho = 1 - 6 * sum((a - b) ** 2 for a, b in zip(rx, ry, strict=True)) / (n * (n * n - 1))
    assert stats.spearman(x, y) == pytest.approx(rho, abs=1e-12)


def test_rankdata_ties():
    values = [10, 20, 20, 5, 20, 10]
    assert stats.rankdata(values) == ranks_by_definition(values)


@pytest.mark.parametrize("seed,n", [(7, 10), (8, 20), (9, 30), (10, 50)])
def test_mean_bias_and_ci(seed, n):
    judge, human = _dataset(seed, n, 1.0, 0.4)
    d = [j - h for j, h in zip(judge, human, strict=True)]
    mean = statistics.mean(d)
    half = T975[n - 1] * statistics.stdev(d) / math.sqrt(n)
    b = ag.mean_bias(judge, human)
    assert b[0] == pytest.approx(mean, abs=1e-12)
    assert b[1] == pytest.approx(mean - half, abs=2e-4)  # t quantile approximation
    assert b[2] == pytest.approx(mean + half, abs=2e-4)


def test_exact_and_within_one_agreement():
    judge = [1, 2, 3, 4, 5, 5]
    human = [1, 3, 5, 4, 4, 1]
    assert ag.exact_agreement(judge, human) == pytest.approx(2 / 6)
    assert ag.within_one_agreement(judge, human) == pytest.approx(4 / 6)


def test_false_bad_and_false_good_by_counting():
    judge, human = _dataset(11, 60, 1.2)
    hg = [h >= 4 for h in human]
    jg = [j >= 4 for j in judge]
    fb = sum(1 for a, b in zip(hg, jg, strict=True) if a and not b) / sum(hg)
    fg = sum(1 for a, b in zip(hg, jg, strict=True) if not a and b) / (len(hg) - sum(hg))
    r = ag.good_rates(judge, human, GOOD)
    assert r["false_bad_rate"] == pytest.approx(fb)
    assert r["false_good_rate"] == pytest.approx(fg)
    lo, hi = r["false_bad_ci"]
    assert lo <= fb <= hi


def test_binomial_p_by_enumeration():
    n, k = 12, 3
    pmf = [math.comb(n, i) / 2 ** n for i in range(n + 1)]
    expected = sum(p for p in pmf if p <= pmf[k] + 1e-15)
    assert stats.binomial_two_sided_p(k, n) == pytest.approx(expected)
    assert stats.binomial_two_sided_p(6, 12) == pytest.approx(1.0)


def test_t_interval_and_t_test_against_table():
    values = [0.5, -0.2, 1.1, 0.7, 0.0, 0.9, 0.4, 1.3, -0.1, 0.6]
    m, lo, hi = stats.t_interval(values)
    half = T975[9] * statistics.stdev(values) / math.sqrt(10)
    assert (lo, hi) == (pytest.approx(m - half, abs=2e-4), pytest.approx(m + half, abs=2e-4))
    # p < 0.05 exactly when the 95% interval excludes 0
    assert (stats.t_test_p(values) < 0.05) == (lo > 0 or hi < 0)


# --- paired comparison ------------------------------------------------------------------------

def _run(run_id, ts, scores, judge_id="j1"):
    return ag.RunScores(run_id, ts, judge_id, {f"i{k}": s for k, s in enumerate(scores)})


def test_paired_comparison_by_definition():
    a = [4, 4, 3, 5, 2, 4, 3, 5, 1, 4, 4, 3]
    b = [3, 4, 3, 4, 2, 3, 3, 4, 1, 3, 4, 2]
    c = ag.paired_comparison(_run("a", 1, a), _run("b", 2, b), rule=GOOD)
    d = [y - x for x, y in zip(a, b, strict=True)]
    assert c.paired and c.n == len(a)
    assert c.shift == pytest.approx(statistics.mean(d))
    assert (c.n_up, c.n_down, c.n_tied) == (0, 6, 6)
    assert c.sign_test_p == pytest.approx(2 / 2 ** 6)
    to_bad = sum(1 for x, y in zip(a, b, strict=True) if x >= 4 and y < 4)
    assert (c.to_good, c.to_bad) == (0, to_bad)
    assert c.mcnemar_p == pytest.approx(stats.binomial_two_sided_p(0, to_bad))


def test_paired_comparison_ignores_nulls_and_unshared_items():
    a = ag.RunScores("a", 1, "j", {"x": 4, "y": None, "z": 3, "w": 5, "v": 2, "u": 4})
    b = ag.RunScores("b", 2, "j", {"x": 3, "y": 4, "z": None, "w": 4, "v": 1, "u": 3, "t": 5})
    c = ag.paired_comparison(a, b, min_paired=3)
    assert c.n == 4 and c.shift == pytest.approx(-1.0)


def test_unpaired_fallback_uses_bias_against_humans():
    human = {f"i{k}": 3.0 for k in range(20)}
    a = ag.RunScores("a", 1, "j", {f"i{k}": 3.0 + (k % 2) for k in range(10)})
    b = ag.RunScores("b", 2, "j", {f"i{k}": 2.0 + (k % 2) for k in range(10, 20)})
    c = ag.paired_comparison(a, b, human)
    assert not c.paired
    assert c.shift == pytest.approx(-1.0)


# --- drift verdict ----------------------------------------------------------------------------

def _sim_runs(n_items=200, n_before=3, n_after=2, shift=-0.6, seed=1, noise=0.35):
    """Runs of a judge over fixed items: test-retest noise around a per-item judge opinion; after
    `n_before` runs the judge changes and scores `shift` lower."""
    rng = random.Random(seed)
    human = {f"i{k}": float(rng.randint(1, 5)) for k in range(n_items)}
    opinion = {k: h + rng.gauss(0, 0.6) for k, h in human.items()}
    runs = []
    for r in range(n_before + n_after):
        s = shift if r >= n_before else 0.0
        judge_id = "judge-v2" if r >= n_before else "judge-v1"
        scores = {k: float(min(5, max(1, round(v + s + rng.gauss(0, noise))))) for k, v in opinion.items()}
        runs.append(ag.RunScores(f"r{r + 1}", 1_000 + r, judge_id, scores))
    return runs, human


def test_drift_flagged_from_first_run_after_judge_change_and_not_before():
    runs, human = _sim_runs()
    v = ag.drift_verdict("helpfulness", runs, human, GOOD)
    assert v.drifted and v.since_run == "r4"
    assert [r.state for r in v.runs] == ["baseline", "ok", "ok", "drifted", "drifted"]
    assert v.direction == "harsher"
    assert v.runs[3].judge_changed and not v.runs[1].judge_changed
    assert v.shift_ci[1] < 0 and v.shift < -0.3
    assert any("r4" in w for w in v.words)


def test_no_drift_on_test_retest_noise():
    runs, human = _sim_runs(shift=0.0)
    v = ag.drift_verdict("helpfulness", runs, human, GOOD)
    assert not v.drifted and v.since_run is None
    assert all(r.state in ("baseline", "ok") for r in v.runs)


def test_false_drift_is_rare_across_many_null_scenarios():
    flagged = 0
    for seed in range(60):
        runs, human = _sim_runs(n_items=40, n_before=4, n_after=0, shift=0.0, seed=seed, noise=0.6)
        flagged += ag.drift_verdict("m", runs, human, GOOD).drifted
    assert flagged <= 2


def test_small_set_is_not_called_drifted():
    runs, human = _sim_runs(n_items=6, shift=-0.6)
    v = ag.drift_verdict("helpfulness", runs, human, GOOD)
    assert not v.drifted
    assert {r.state for r in v.runs[1:]} <= {"insufficient"}


def test_large_but_uncertain_shift_is_unclear_not_drift():
    human = {f"i{k}": 3.0 for k in range(12)}
    base = ag.RunScores("r1", 1, "j", {f"i{k}": 3.0 for k in range(12)})
    # mean shift -0.5, but wildly spread: the CI includes 0
    noisy = ag.RunScores("r2", 2, "j", {f"i{k}": 3.0 + (-3 if k % 3 == 0 else 1 if k % 3 == 1 else 0.5)
                                        for k in range(12)})
    v = ag.drift_verdict("m", [base, noisy], human, GOOD)
    assert v.runs[1].state == "unclear" and not v.drifted
    assert "not established" in " ".join(v.words)


def test_recovery_ends_the_drift():
    runs, human = _sim_runs(n_before=2, n_after=2, shift=-0.8)
    # a later run of the old judge again
    back = ag.RunScores("r5", 2_000, "judge-v1", dict(runs[1].scores))
    v = ag.drift_verdict("m", [*runs, back], human, GOOD)
    assert v.runs[-1].state == "ok" and not v.drifted


def test_rank_agreement_collapse_is_drift_even_without_mean_shift():
    rng = random.Random(5)
    human = {f"i{k}": float(1 + k % 5) for k in range(150)}
    good = ag.RunScores("r1", 1, "j1", {k: h for k, h in human.items()})
    shuffled = list(human.values())
    rng.shuffle(shuffled)
    broken = ag.RunScores("r2", 2, "j2", dict(zip(human, shuffled, strict=True)))  # same mean, random order
    v = ag.drift_verdict("m", [good, broken], human, GOOD)
    assert v.drifted and v.since_run == "r2"
    assert "rank_agreement_drop" in v.runs[1].reasons


def test_null_rate_and_reasons_are_counted():
    run = ag.RunScores("r1", 1, "j", {"a": 4.0, "b": None, "c": None, "d": 3.0},
                       reasons={"b": "refusal", "c": "timeout"}, attempts={"a": 1, "b": 1, "c": 4, "d": 2})
    st = ag.run_stats(run, {"a": 4.0, "b": 3.0, "c": 2.0, "d": 3.0}, GOOD)
    assert (st.n, st.scored, st.null) == (4, 2, 2)
    assert st.null_reasons == {"refusal": 1, "timeout": 1}
    assert st.retries == 4
    assert st.to_dict()["null_rate"] == 0.5


def test_baseline_can_be_chosen():
    runs, human = _sim_runs()
    v = ag.drift_verdict("m", runs, human, GOOD, baseline_run="r4")
    assert not v.drifted  # against the new judge, r5 is in line
    assert v.runs[0].state == "before_baseline"
    with pytest.raises(ValueError):
        ag.drift_verdict("m", runs, human, GOOD, baseline_run="nope")


def test_min_shift_scales_with_the_score_range():
    assert ag.default_min_shift({"a": 1.0, "b": 5.0}) == pytest.approx(0.2)
    assert ag.default_min_shift({"a": 0.0, "b": 1.0}) == pytest.approx(0.05)
    assert ag.default_min_shift({}, (0.0, 10.0)) == pytest.approx(0.5)
