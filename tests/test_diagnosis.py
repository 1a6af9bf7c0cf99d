"""Ceiling and waste diagnoses on constructed attempt sets whose truth is known."""

from __future__ import annotations

from _attempts import attempt, runs

from pytest_agentloop.analysis.diagnosis import (
    TEMPLATE_FIX,
    ceiling_diagnoses,
    pooled_ceiling_diagnoses,
    waste_profiles,
)
from pytest_agentloop.records import Attempt, Limit, MalformedCall, ToolCall, ToolResult, Transcript, Turn

BASE = {"budget": {"turns": 30, "tokens": 200_000}}
TURNS_X2 = {"cell": "turns=x2", "cell_config": {"turns": 60}, "budget": {"turns": 60, "tokens": 200_000}}
TOKENS_X2 = {
    "cell": "tokens=x2",
    "cell_config": {"tokens": 400_000},
    "budget": {"turns": 30, "tokens": 400_000},
    "limit": Limit.TOKENS,
}
BOTH_X2 = {
    "cell": "turns+tokens=x2",
    "cell_config": {"turns": 60, "tokens": 400_000},
    "budget": {"turns": 60, "tokens": 400_000},
}


def _sweep(base: str, turns: str | None, tokens: str | None, both: str | None = None) -> list[Attempt]:
    attempts = runs(base, canary="heavy", **BASE)
    for outcomes, fields in ((turns, TURNS_X2), (tokens, TOKENS_X2), (both, BOTH_X2)):
        if outcomes is not None:
            attempts += runs(outcomes, canary="heavy", **fields)
    return attempts + runs("PPP", canary="easy", **BASE)  # a canary that never runs out: no diagnosis


def _only(attempts: list[Attempt]) -> tuple[str, str]:
    (diagnosis,) = ceiling_diagnoses(attempts)
    assert (diagnosis.model, diagnosis.canary) == ("m", "heavy")
    return diagnosis.verdict, diagnosis.text


def test_turn_limited_agent() -> None:
    verdict, text = _only(_sweep("BBBBBBBP", turns="PPPPPPPP", tokens="BBBBBBBP"))
    assert verdict == "turn ceiling"
    assert "more turns fixed it" in text and "7/8 runs (turns)" in text and "95% CI [+" in text


def test_token_limited_agent() -> None:
    verdict, text = _only(_sweep("BBBBBBBB", turns="BBBBBBBB", tokens="PPPPPPPB"))
    assert verdict == "token ceiling"
    assert "tokens=x2 7/8 vs baseline 0/8: better" in text


def test_incapable_agent_needs_both_budgets_raised_to_exclude_the_margin() -> None:
    verdict, text = _only(_sweep("BBBBBBBBB", turns="BBBBBBBBB", tokens="BBBBBBBBB", both="BBBBBBBBB"))
    assert verdict == "capability ceiling"
    assert "excluded an improvement of 30%" in text and "turns+tokens=x2 0/9 vs baseline 0/9" in text


def test_singles_that_did_not_help_are_not_a_capability_ceiling() -> None:
    """The issue's case: 'raising both did not help' from two separate raises is absence of evidence."""
    verdict, text = _only(_sweep("BBBBBBBBB", turns="BBBBBBBBB", tokens="BBBBBBBBB"))
    assert verdict == "inconclusive"
    assert "no cell raised turns and tokens together" in text


def test_a_helping_raise_below_significance_is_inconclusive_with_a_run_count() -> None:
    """0/6 at the baseline, 5/6 with turns raised was once called a capability ceiling (McNemar p=0.06)."""
    verdict, text = _only(_sweep("BBBBBB", turns="PPPPPB", tokens="BBBBBB", both="BBBBBB"))
    assert verdict == "turn ceiling"  # Boschloo calls it: p = 0.006, interval above zero
    verdict, text = _only(_sweep("BBB", turns="PBB", tokens="BBB", both="BBB"))
    assert verdict == "inconclusive"
    assert "more runs per canary of baseline and turns=x2 would show whether it helps" in text
    assert "more runs per canary of baseline and turns+tokens=x2 would exclude an improvement of 30%" in text


def test_a_lower_budget_is_a_cut_not_a_raise() -> None:
    cut = {"cell": "turns=10", "cell_config": {"turns": 10}, "budget": {"turns": 10, "tokens": 200_000}}
    attempts = runs("BBBBBBBBB", canary="heavy", **BASE) + runs("PPPPPPPPP", canary="heavy", **cut)
    verdict, text = _only(attempts)
    assert verdict == "incomplete sweep" and "no cell raised a budget" in text


def test_a_raise_that_changes_another_factor_is_no_budget_probe() -> None:
    mixed = {**BOTH_X2, "cell": "combined", "cell_config": {**BOTH_X2["cell_config"], "temperature": 0.2}}
    attempts = runs("BBBBBBBBB", canary="heavy", **BASE) + runs("BBBBBBBBB", canary="heavy", **mixed)
    assert _only(attempts)[0] == "incomplete sweep"


def test_missing_budget_factor_says_what_to_add() -> None:
    verdict, text = _only(_sweep("BBBBBBBB", turns=None, tokens=None))
    assert verdict == "incomplete sweep" and "--agent-diagnose" in text


def _three_canaries(turns: str, tokens: str, both: str) -> list[Attempt]:
    """Three canaries at N=3, each run out of budget in every baseline run: 9 pooled runs a side."""
    attempts: list[Attempt] = []
    for canary in ("a", "b", "c"):
        attempts += runs("BBB", canary=canary, **BASE)
        attempts += runs(turns, canary=canary, **TURNS_X2)
        attempts += runs(tokens, canary=canary, **TOKENS_X2)
        attempts += runs(both, canary=canary, **BOTH_X2)
    return attempts


def test_pooled_canaries_separate_what_one_canary_at_n3_cannot() -> None:
    attempts = _three_canaries(turns="PBB", tokens="BBB", both="PBB")
    assert {d.verdict for d in ceiling_diagnoses(attempts)} == {"inconclusive"}
    (pooled,) = pooled_ceiling_diagnoses(_three_canaries(turns="PPB", tokens="BBB", both="PPB"))
    assert (pooled.model, pooled.canary, pooled.verdict) == ("m", "3 over-budget canaries", "turn ceiling")
    assert "turns=x2 6/9 vs baseline 0/9: better" in pooled.text


def test_pooled_capability_ceiling_and_one_canary_gets_none() -> None:
    (pooled,) = pooled_ceiling_diagnoses(_three_canaries(turns="BBB", tokens="BBB", both="BBB"))
    assert pooled.verdict == "capability ceiling"
    assert pooled_ceiling_diagnoses(_sweep("BBB", turns="PPP", tokens="BBB")) == []  # one canary: own line


def _turn(index: int, *, calls: int = 0, text_calls: int = 0, malformed: int = 0, **result: bool) -> Turn:
    made = [ToolCall(id=f"n{i}", name="edit_file") for i in range(calls)]
    made += [ToolCall(id=f"t{i}", name="edit_file", source="text") for i in range(text_calls)]
    return Turn(
        index=index,
        request_messages=1,
        request_chars=1,
        calls=made,
        malformed=[MalformedCall(kind="bad_json", raw="{", error="eof") for _ in range(malformed)],
        results=[ToolResult(call_id=c.id, name=c.name, ok=True, output="", **result) for c in made],
        native_tool_calls=calls,
    )


def test_wasted_turn_profile_from_transcripts() -> None:
    turns = [
        _turn(0, calls=1, changed=True),  # useful
        _turn(1, malformed=2),  # malformed only
        _turn(2, calls=1, redundant=True),
        _turn(3, calls=1, changed=False),  # edit that changed nothing
        _turn(4),  # prose without a call, not the last turn
        _turn(5),  # the closing answer: not waste
    ]
    record = attempt("failed", turns=6, tool_calls=4, transcript=Transcript(turns=turns))
    (profile,) = waste_profiles([record, attempt("infra_error")])
    assert (profile.malformed, profile.redundant, profile.noop_edits, profile.prose) == (1, 1, 1, 1)
    assert profile.from_transcripts and profile.share(profile.prose) == "17%"
    assert not profile.parser_mismatch and not profile.dead_end and profile.findings == []


def test_parser_mismatch_agent_is_blamed_on_the_runtime() -> None:
    turns = [_turn(0, text_calls=1, changed=True), _turn(1, text_calls=1, changed=True)]
    record = attempt("passed", turns=2, tool_calls=2, text_tool_calls=2, transcript=Transcript(turns=turns))
    (profile,) = waste_profiles([record])
    assert profile.parser_mismatch
    assert "fix the runtime or its chat template" in profile.findings[0]
    prompted = record.model_copy(
        update={"cell": "tool_mode=prompted", "cell_config": {"tool_mode": "prompted"}}
    )
    assert not waste_profiles([prompted])[0].parser_mismatch  # text calls are the design there


def test_counters_only_and_dead_end() -> None:
    counted = attempt(
        "budget_exceeded", turns=4, tool_calls=3, malformed_tool_calls=9, redundant_tool_calls=1
    )
    (profile,) = waste_profiles([counted])
    assert (profile.malformed, profile.redundant, profile.noop_edits) == (4, 1, None)
    assert not profile.from_transcripts and profile.share(profile.prose) == "n/a (no transcripts)"
    dead = waste_profiles(runs("NNN", turns=1))[0]
    assert dead.dead_end and TEMPLATE_FIX in dead.findings[0]


def test_the_results_file_keeps_the_pooled_diagnosis() -> None:
    """The terminal and the card show the pooled line: the results file must carry it too."""
    from pytest_agentloop.results import document

    attempts = _three_canaries(turns="BBB", tokens="BBB", both="BBB")
    (pooled,) = document({"started": "x"}, attempts)["pooled_diagnoses"]
    assert (pooled["model"], pooled["canary"], pooled["verdict"]) == (
        "m",
        "3 over-budget canaries",
        "capability ceiling",
    )
