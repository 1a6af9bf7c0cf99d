import pytest
from pager import paginate

ITEMS = list("abcdefg")


@pytest.mark.parametrize(
    ("page", "expected"), [(1, ["a", "b", "c"]), (2, ["d", "e", "f"]), (3, ["g"]), (4, [])]
)
def test_pages(page, expected):
    assert paginate(ITEMS, page, 3) == expected


def test_validation_kept():
    with pytest.raises(ValueError):
        paginate(ITEMS, 0, 3)
    with pytest.raises(ValueError):
        paginate(ITEMS, 1, 0)
