"""Statistics and the measurement protocol's stopping and quality rules."""

import time

import numpy as np
import pytest

from hwprof.errors import ConfigError, MeasurementError
from hwprof.measure.protocol import Plan, measure
from hwprof.measure.stats import combine, mad_outliers, median_ci, statistic, summarize


def test_median_ci_covers_true_median():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        x = rng.lognormal(0.0, 0.2, size=40)  # true median 1.0
        lo, hi = median_ci(x)
        hits += lo <= 1.0 <= hi
    assert 0.92 <= hits / 400 <= 0.995


def test_mad_outliers_flag_the_spike_only():
    x = np.r_[np.full(50, 1.0) + np.linspace(-0.01, 0.01, 50), 5.0]
    mask = mad_outliers(x)
    assert mask.sum() == 1 and mask[-1]


def test_summary_fields_and_statistic():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s.n == 5 and s.median_ms == 3.0 and s.min_ms == 1.0 and s.max_ms == 100.0
    assert s.mean_ms == pytest.approx(22.0)
    assert statistic([1.0, 2.0, 3.0], "min") == 1.0
    with pytest.raises(ValueError, match="unknown statistic"):
        statistic([1.0], "mode")
    with pytest.raises(ValueError):
        summarize([])


class Sampler:
    """A run function drawing from a known distribution, counting what it was asked for."""

    def __init__(self, sigma: float, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.sigma = sigma
        self.timed = 0
        self.warm = 0

    def __call__(self, runs: int, warmup: int) -> list[float]:
        self.warm += warmup
        self.timed += runs
        return list(self.rng.lognormal(0.0, self.sigma, size=runs))


def test_quiet_workload_stops_at_min_runs():
    run = Sampler(sigma=0.005)
    out = measure(run, Plan(warmup_runs=7, warmup_s=0, min_runs=20, max_runs=300, chunk=10))
    assert len(out.samples_ms) == 20 and run.timed == 20
    assert out.warmup == 7 and run.warm == 7
    assert out.flags == ()


def test_noisy_workload_hits_the_cap_and_says_what_to_do():
    run = Sampler(sigma=0.5)
    out = measure(run, Plan(warmup_runs=0, warmup_s=0, min_runs=10, max_runs=40, chunk=10, target_ci=0.001))
    assert len(out.samples_ms) == 40
    assert "ci-not-reached" in out.flags and "high-cv" in out.flags
    assert any("max_runs" in a for a in out.advice)


def test_warmup_by_time_keeps_running_until_the_clock():
    calls = []

    def run(runs, warmup):
        calls.append((runs, warmup))
        time.sleep(0.01)
        return [1.0] * runs

    out = measure(run, Plan(warmup_runs=1, warmup_s=0.1, min_runs=5, max_runs=5, chunk=5))
    assert out.warmup > 1 + 5  # count, then chunks until 0.1 s passed
    assert sum(r for r, _ in calls) == 5


def test_slow_first_run_is_flagged():
    def run(runs, warmup):
        return [10.0] + [1.0] * (runs - 1) if runs else []

    out = measure(run, Plan(warmup_runs=0, warmup_s=0, min_runs=10, max_runs=10, chunk=10))
    assert "slow-first-run" in out.flags


def test_short_answer_from_a_device_is_an_error():
    with pytest.raises(MeasurementError, match="returned 1 samples"):
        measure(lambda runs, warmup: [1.0], Plan(warmup_runs=0, warmup_s=0, chunk=5))


def test_plan_validation_and_overrides():
    with pytest.raises(ConfigError, match="min_runs"):
        Plan(min_runs=50, max_runs=10)
    with pytest.raises(ConfigError, match="unknown protocol setting"):
        Plan().updated({"warmup": 3})
    assert Plan().updated({"max_runs": 50.0, "target_ci": None}).max_runs == 50
    with pytest.raises(ConfigError, match="rounds"):
        Plan(rounds=0)


def test_per_round_plan_splits_the_budget():
    plan = Plan(rounds=4, target_ci=0.01, max_runs=300, max_time_s=8.0, min_runs=10)
    one = plan.per_round()
    assert one.rounds == 1 and one.target_ci == pytest.approx(0.02)
    assert one.max_runs == 75 and one.max_time_s == pytest.approx(2.0) and one.min_runs == 10
    assert Plan().per_round() == Plan()


def test_combine_outvotes_a_slow_round_that_pooling_would_not():
    rng = np.random.default_rng(0)
    normal = [list(1.0 + 0.05 * rng.standard_normal(40)) for _ in range(2)]
    slow = list(2.0 + 0.1 * rng.standard_normal(40))  # a round taken during a 2x slow spell
    rounds = [normal[0], slow, normal[1]]
    assert combine(rounds) == pytest.approx(1.0, abs=0.02)
    assert statistic(sum(rounds, []), "median") > 1.03  # pooling drags the median up
    assert combine([normal[0]], "min") == pytest.approx(min(normal[0]))
    # min is the floor of every round, not the median of round minima: slow rounds cannot raise it
    assert combine(rounds, "min") == min(min(r) for r in normal) and combine([slow], "min") > 1.5
    with pytest.raises(ValueError):
        combine([])


def test_plan_statistic_and_extra_rounds_in_proportion():
    cpu = Plan(rounds=10, max_rounds=20, statistic="min")
    assert cpu.round_cap == 20 and Plan(rounds=4).round_cap == 4
    quick = cpu.updated({"rounds": 3})
    assert quick.max_rounds == 6 and quick.statistic == "min"  # 10 up to 20 becomes 3 up to 6
    assert cpu.updated({"rounds": 3, "max_rounds": 0}).round_cap == 3
    assert cpu.per_round().max_rounds == 0 and cpu.per_round().statistic == "min"
    with pytest.raises(ConfigError, match="protocol.statistic must be one of median, mean, min, p90"):
        Plan(statistic="fastest")
    with pytest.raises(ConfigError, match="max_rounds .5. is below protocol.rounds .10."):
        cpu.updated({"max_rounds": 5})
