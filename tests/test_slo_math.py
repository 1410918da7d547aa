"""The pure SLO math: alert windows, burn rates, states, the Wilson gate, detection latency."""

from __future__ import annotations

import pytest

from oncall_ai.analysis import slo as s
from oncall_ai.analysis.stats import wilson_interval, wilson_lower

H, M, D = s.HOUR_MS, s.MINUTE_MS, s.DAY_MS


def pairs_table(period_ms):
    return [(p.severity, p.long_ms, p.short_ms, p.burn) for p in s.burn_pairs(period_ms)]


def test_30d_pairs_are_the_workbooks():
    assert pairs_table(30 * D) == [
        ("page", H, 5 * M, 14.4), ("page", 6 * H, 30 * M, 6.0),
        ("ticket", D, 2 * H, 3.0), ("ticket", 3 * D, 6 * H, 1.0)]
    assert [p.budget_fraction for p in s.burn_pairs(30 * D)] == [0.02, 0.05, 0.1, 0.1]


def test_28d_pairs_match_sloths_28d_factors():
    burns = [p.burn for p in s.burn_pairs(28 * D)]
    assert burns == pytest.approx([13.44, 5.6, 2.8, 0.933333], abs=1e-6)
    assert [p.long_ms for p in s.burn_pairs(28 * D)] == [H, 6 * H, D, 3 * D]


def test_24h_pairs_are_floored_and_keep_workbook_burns():
    assert pairs_table(D) == [
        ("page", H, 5 * M, 14.4), ("page", 2 * H, 10 * M, 6.0),
        ("ticket", 4 * H, 20 * M, 3.0), ("ticket", 8 * H, 40 * M, 1.0)]
    assert all(p.floored for p in s.burn_pairs(D))


@pytest.mark.parametrize("period_ms", [8 * H, 12 * H, D, 2 * D, 7 * D, 14 * D, 28 * D, 30 * D, 90 * D, 365 * D])
def test_pair_invariants(period_ms):
    pairs = s.burn_pairs(period_ms)
    for p in pairs:
        # burn = fraction * period / long window, the relation every threshold is derived from
        assert p.burn == pytest.approx(p.budget_fraction * period_ms / p.long_ms, rel=1e-5)
        assert 0 < p.budget_fraction <= 1
        assert p.burn >= 0.9  # the snap can dip just below 1 (28d: 0.933, as in Sloth)
        assert p.long_ms <= period_ms
        assert abs(p.short_ms - p.long_ms / 12) <= M
    longs = [p.long_ms for p in pairs]
    assert longs == sorted(longs)
    assert s.period_problem(period_ms) is None


@pytest.mark.parametrize("period", ["1h", "4h", "7h"])
def test_periods_shorter_than_the_longest_window_are_a_problem(period):
    from oncall_ai.timeutil import parse_duration_ms

    msg = s.period_problem(parse_duration_ms(period))
    assert msg and "shorter than the longest alert window (8h)" in msg


def test_wilson_matches_known_values():
    lo, hi = wilson_interval(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
    assert wilson_lower(0, 10) == pytest.approx(0.0, abs=1e-12)
    assert wilson_lower(0, 0) == 0.0
    # more evidence at the same ratio -> a tighter (higher) lower bound
    assert wilson_lower(2, 10) < wilson_lower(20, 100) < wilson_lower(200, 1000) < 0.2


def counts_for(period_ms, ratio_by_window, rate_per_hour):
    """Counts per window for a steady event rate with a given bad ratio in each window."""
    out = {}
    for w in s.windows_needed(period_ms):
        n = round(rate_per_hour * w / H)
        bad = round(n * ratio_by_window(w))
        out[w] = s.Counts(n, n - bad)
    return out


def evaluate(period_ms, counts, sampled=False, **kw):
    return s.evaluate(name="x", feature="f", metric="m", objective=0.99, period_ms=period_ms,
                      counts=counts, sampled=sampled, **kw)


def test_fast_burn_pages():
    # 40% bad over the last 90 minutes, 0.2% before: 1h and 5m both far above 14.4%
    def ratio(w):
        return (min(w, 90 * M) * 0.4 + max(0, w - 90 * M) * 0.002) / w
    st = evaluate(30 * D, counts_for(30 * D, ratio, 6000))
    assert st.state == "page" and st.exit_code == 2
    assert any(p.firing and p.pair.name == "page-fast" for p in st.pairs)
    assert "FIRING" in st.reasons[0]


def test_slow_burn_tickets_but_does_not_page():
    st = evaluate(30 * D, counts_for(30 * D, lambda w: 0.04, 6000))  # 4x burn everywhere
    assert st.state == "ticket"
    assert [p.pair.name for p in st.pairs if p.firing] == ["ticket-fast", "ticket-slow"]
    assert st.budget_left == pytest.approx(1 - 4.0)


def test_short_blip_stays_quiet():
    # 100% bad for 3 minutes, then clean: the 5m window burns, no long window does
    def ratio(w):
        return (min(w, 3 * M) * 1.0 + max(0, w - 3 * M) * 0.001) / w
    st = evaluate(30 * D, counts_for(30 * D, ratio, 6000))
    assert st.state == "ok"
    fast = st.pairs[0]
    assert not fast.firing and "short blip" in fast.reason


def test_burn_that_stopped_resets_quickly():
    # bad between 70 and 10 minutes ago: the 1h window still burns but the 5m window is clean
    def ratio(w):
        bad = max(0, min(w, 70 * M) - 10 * M)
        return bad * 0.5 / w
    st = evaluate(30 * D, counts_for(30 * D, ratio, 6000))
    assert not st.pairs[0].firing and "burn has stopped" in st.pairs[0].reason


def test_sampled_noise_does_not_page_where_the_point_estimate_would():
    # 25 judged events in the last hour with 5 bad (20% > 14.4%) and 2 of 3 bad in the last 5m
    counts = counts_for(30 * D, lambda w: 0.005, 25)
    counts[H] = s.Counts(25, 20)
    counts[5 * M] = s.Counts(3, 1)
    naive = evaluate(30 * D, counts, sampled=False)
    assert naive.state == "page"
    st = evaluate(30 * D, counts, sampled=True)
    assert st.state == "ok"
    assert "sampling noise" in st.pairs[0].reason
    assert st.pairs[0].long.bad_lower < 0.144 < st.pairs[0].long.bad_ratio


def test_sampled_real_burn_still_pages():
    counts = counts_for(30 * D, lambda w: 0.005, 400)
    counts[H] = s.Counts(400, 240)   # 40% bad with n = 400: the lower bound is far above 14.4%
    counts[5 * M] = s.Counts(33, 20)
    assert evaluate(30 * D, counts, sampled=True).state == "page"


def test_sampled_windows_need_min_events():
    counts = counts_for(30 * D, lambda w: 0.5, 2)  # 2 events/hour: 1h and 6h windows hold < 20
    st = evaluate(30 * D, counts, sampled=True)
    assert not st.pairs[0].evaluable and "min_events 20" in st.pairs[0].reason
    assert st.pairs[3].evaluable  # 3 days hold 144 events
    assert st.state == "ticket"
    few = evaluate(30 * D, counts_for(30 * D, lambda w: 0.5, 0.1), sampled=True)
    assert few.state == "no_data" and "too few events" in few.reasons[0]


def test_no_events_is_no_data():
    st = evaluate(30 * D, {})
    assert st.state == "no_data" and st.exit_code == 3 and st.sli is None
    assert "no events" in st.reasons[0]


def test_severity_ticket_caps_a_page():
    counts = counts_for(30 * D, lambda w: 0.5, 6000)
    st = evaluate(30 * D, counts, severity="ticket")
    assert st.state == "ticket" and "reported as a ticket" in st.reasons[-1]


@pytest.mark.parametrize("states,code", [
    ([], 3), (["ok"], 0), (["ok", "ticket"], 1), (["ticket", "page", "ok"], 2),
    (["ok", "no_data"], 3), (["no_data", "ticket"], 1), (["no_data", "page"], 2)])
def test_check_exit_code(states, code):
    assert s.check_exit_code(states) == code


def test_time_to_page_gets_faster_with_more_samples_and_none_when_too_sparse():
    kw = dict(period_ms=30 * D, objective=0.99, baseline_bad=0.005, drop_bad=0.288, min_events=20)
    times = [s.time_to_page(judged_per_hour=r, **kw) for r in (30, 100, 1000, 10000)]
    assert None not in times
    assert times == sorted(times, reverse=True) and times[0] > times[-1]
    assert s.time_to_page(judged_per_hour=2, **kw) is None  # 12 events in 6h < min_events
    # a drop that never crosses the threshold never pages
    assert s.time_to_page(judged_per_hour=10000, **{**kw, "drop_bad": 0.05}) is None


def test_sample_rate_to_page_within_an_hour_is_the_smallest_that_does():
    kw = dict(period_ms=30 * D, objective=0.99, baseline_bad=0.005, drop_bad=0.288, min_events=20)
    rate = s.sample_rate_to_page_within(target_ms=H, responses_per_hour=3600, **kw)
    assert rate is not None and 0 < rate <= 1
    assert s.time_to_page(judged_per_hour=3600 * rate, horizon_ms=H, **kw) <= H
    assert s.time_to_page(judged_per_hour=3600 * rate * 0.9, horizon_ms=H, **kw) is None
    assert s.sample_rate_to_page_within(target_ms=H, responses_per_hour=5, **kw) is None


def test_sampling_note_for_a_sparse_judge():
    note = s.sampling_note(period_ms=30 * D, objective=0.99, judged_per_hour=36, sample_rate=0.01,
                           baseline_bad=0.005, min_events=20)
    assert note.responses_per_hour == pytest.approx(3600)
    assert note.scenario_bad_ratio == pytest.approx(0.288)
    assert note.time_to_page_ms is not None and note.time_to_page_ms > 5 * M
    assert note.sample_rate_to_page_within_target is not None


def test_docs_table_matches_the_code():
    """docs/slo.md's pair table is what burn_pairs computes."""
    from pathlib import Path

    from oncall_ai.timeutil import format_duration, parse_duration_ms

    doc = (Path(__file__).resolve().parent.parent / "docs" / "slo.md").read_text()
    rows = [r.strip("|").split("|") for r in doc.splitlines()
            if r.startswith("| ") and r.split("|")[2].strip() in ("page-fast", "page-slow", "ticket-fast", "ticket-slow")]
    assert len(rows) == 16
    for period, name, severity, long, short, burn, spent in ([c.strip() for c in r] for r in rows):
        pair = next(p for p in s.burn_pairs(parse_duration_ms(period)) if p.name == name)
        assert (pair.severity, format_duration(pair.long_ms), format_duration(pair.short_ms)) == (severity, long, short)
        assert pair.burn == pytest.approx(float(burn), rel=1e-6)
        assert f"{pair.budget_fraction * 100:.3g}%" == spent
