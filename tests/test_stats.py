import statistics

import pytest

from embdrop.stats import base_metric, interval


def test_interval_is_the_student_t_interval_of_the_mean():
    mean, std, low, high = interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0 and std == pytest.approx(statistics.stdev([1, 2, 3, 4, 5]))
    assert high - mean == pytest.approx(2.776 * std / 5**0.5)  # t(0.975, 4 df) = 2.776
    assert interval([2.0])[0] == 2.0


def test_the_headline_metric_is_the_recipes_own_in_its_order():
    assert base_metric({"loss": 0.3, "accuracy": 0.9}) == ("accuracy", 0.9)
    assert base_metric({"accuracy": 0.8, "auc": 0.7}) == ("auc", 0.7)  # flights: AUC first
    assert base_metric({"bleu": 12.0, "loss": 2.0}) == ("bleu", 12.0)  # none of them: the first
