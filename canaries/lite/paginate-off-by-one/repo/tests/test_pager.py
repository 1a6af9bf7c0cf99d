import pytest
from pager import page_count, paginate


def test_first_page():
    assert paginate([1, 2, 3, 4, 5], 1, 2) == [1, 2]


def test_page_count_rounds_up():
    assert page_count(5, 2) == 3


def test_page_zero_is_rejected():
    with pytest.raises(ValueError):
        paginate([1], 0, 1)
