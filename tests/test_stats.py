from pytest_agentloop.analysis.stats import wilson


def test_wilson_hand_checked_value() -> None:
    # 8/10 at z=1.96: centre 0.99208/1.38416 = 0.7167, half-width 0.2266 (worked by hand from the textbook formula).
    low, high = wilson(8, 10)
    assert round(low, 4) == 0.4902
    assert round(high, 4) == 0.9433
