"""Cost per pass: per-token price can invert once pass rates and prompt sizes are counted."""

from __future__ import annotations

import math

import pytest
from _attempts import runs
from pydantic import ValidationError

from pytest_agentloop.analysis.cost import Price, attempt_cost, cost_rows
from pytest_agentloop.records import Transcript, Turn, Usage

PRICES = {"cloud:cheap": Price(input=0.1, output=0.4), "cloud:dear": Price(input=1.0, output=4.0)}


def test_cheaper_per_token_model_can_cost_more_per_pass() -> None:
    # cheap: 10x cheaper per token, but long prompts and 1 pass in 10 -> $0.0058 per pass.
    cheap = runs("P" + "F" * 9, model="cloud:cheap", prompt_tokens=5000, completion_tokens=200)
    # dear: short prompts, 9 passes in 10 -> $0.00133 per pass.
    dear = runs("PPPPPPPPPF", model="cloud:dear", prompt_tokens=1000, completion_tokens=50)
    rows = cost_rows(cheap + dear, PRICES)
    assert [r.model for r in rows] == ["cloud:dear", "cloud:cheap"]
    assert math.isclose(rows[1].cost_per_pass or 0, 10 * (5000 * 0.1 + 200 * 0.4) / 1e6)
    assert math.isclose(rows[0].cost_per_pass or 0, 10 * (1000 * 1.0 + 50 * 4.0) / 1e6 / 9)


def test_local_hourly_cost_uses_model_time_then_wall_time() -> None:
    local = Price(hourly=3.6)
    (busy,) = runs("P", model_s=10.0, wall_s=50.0)
    (wall_only,) = runs("P", wall_s=50.0)
    assert math.isclose(attempt_cost(busy, local), 0.01)
    assert math.isclose(attempt_cost(wall_only, local), 0.05)


def test_cached_tokens_come_from_the_transcript() -> None:
    turns = [
        Turn(index=0, request_messages=1, request_chars=1, usage=Usage(prompt_tokens=1000, cached_tokens=800))
    ]
    (record,) = runs("P", prompt_tokens=1000, transcript=Transcript(turns=turns))
    price = Price(input=1.0, output=1.0, cached_input=0.1)
    assert math.isclose(attempt_cost(record, price), (200 * 1.0 + 800 * 0.1) / 1e6)


def test_no_pass_is_infinite_unpriced_is_last_and_infra_is_free() -> None:
    attempts = runs("FFI", model="cloud:cheap", prompt_tokens=100) + runs("P", model="local:unpriced")
    rows = cost_rows(attempts, PRICES)
    assert [r.model for r in rows] == ["cloud:cheap", "local:unpriced"]
    assert rows[0].n == 2 and rows[0].cost_per_pass == math.inf and "infinite" in rows[0].describe()
    assert 'add [prices."local:unpriced"]' in rows[1].describe()


def test_a_price_is_per_token_or_hourly() -> None:
    with pytest.raises(ValidationError, match="either input/output"):
        Price(input=1.0, hourly=2.0)
    with pytest.raises(ValidationError, match="either input/output"):
        Price()


def test_every_report_reads_local_prices_the_same_way(pytester: pytest.Pytester) -> None:
    """[prices.local] covers each local model for the HTML verdict and the gates too (it once reached only
    the terminal and the cards, so the HTML said "no price")."""
    from pytest_agentloop.report.outputs import run_prices

    pytester.makefile(".toml", agentloop='models = ["ollama:a", "openai:b"]\n[prices.local]\nhourly = 0.3\n')
    from pytest_agentloop.plugin import _settings
    from pytest_agentloop.state import settings_key

    config = pytester.parseconfigure()
    config.stash[settings_key] = _settings(config)  # as the session start does
    assert run_prices(config) == {"ollama:a": Price(hourly=0.3)}
