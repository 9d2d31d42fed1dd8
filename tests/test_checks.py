import math

import pytest

from embdrop import _checks


def test_template_is_the_one_in_conventions():
    with pytest.raises(ValueError) as e:
        _checks.probability("p", 1.5)
    assert str(e.value) == "Invalid value for argument 'p': expected a float in [0, 1). Received: p=1.5"


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, math.nan, math.inf, "0.5", True, None])
def test_probability_refuses(bad):
    with pytest.raises(ValueError, match=r"argument 'p': expected a float in \[0, 1\)\. Received: p="):
        _checks.probability("p", bad)


def test_probability_allow_one():
    assert _checks.probability("p", 1, allow_one=True) == 1.0
    with pytest.raises(ValueError, match=r"in \[0, 1\]\. Received: p=1.01"):
        _checks.probability("p", 1.01, allow_one=True)


def test_integer_bounds_and_bools():
    assert _checks.integer("n", 3, low=1) == 3
    with pytest.raises(ValueError, match=r"argument 'n': expected an int >= 1\. Received: n=0"):
        _checks.integer("n", 0, low=1)
    with pytest.raises(ValueError, match=r"expected an int in \[0, 5\)\. Received: i=5"):
        _checks.integer("i", 5, low=0, high=5)
    with pytest.raises(ValueError, match="Received: n=True"):
        _checks.integer("n", True, low=0)


def test_dims():
    assert _checks.dims("shared_dims", 1) == (1,)
    assert _checks.normalize_dims("shared_dims", (-1, 0), 3) == (2, 0)
    with pytest.raises(ValueError, match=r"axes in \[-3, 3\) for an input of rank 3\. Received: shared_dims=\(3,\)"):
        _checks.normalize_dims("shared_dims", (3,), 3)
    with pytest.raises(ValueError, match="distinct axes"):
        _checks.normalize_dims("shared_dims", (1, -2), 3)
    with pytest.raises(ValueError, match="a tuple of distinct ints"):
        _checks.dims("shared_dims", (1, 1))
