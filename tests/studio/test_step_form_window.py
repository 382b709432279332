"""A send or delay step's `window` in the step form: one text input that holds Courier's
opening hours or the window object as one line of JSON, and converts back exactly."""

from __future__ import annotations

from typing import Any

from tests.studio.test_step_form_conversion import _posted
from tidings.studio import step_form

OFFICE = {"days": ["mon", "fri"], "hours": {"start": "09:00", "end": "18:00"}}
STEPS: list[Any] = [
    {"action": "send", "template": "t", "window": "Mo-Fr 09:00-18:00"},
    {"action": "delay", "duration": "1 hour", "window": OFFICE},
]


def test_a_window_is_one_text_input_with_a_hint() -> None:
    for action in ("send", "delay"):
        (widget,) = [w for w in step_form.widgets(action) if w.path == "window"]
        assert widget.kind == step_form.TEXT
        assert "Mo-Fr 09:00-18:00" in widget.hint


def test_a_window_converts_to_the_form_and_back_exactly() -> None:
    cards = step_form.cards_of(STEPS)
    assert cards[0].values["window"] == "Mo-Fr 09:00-18:00"
    assert cards[1].values["window"].startswith('{"days": ["mon", "fri"]')
    assert all(card.kinds == {} and card.raw is None for card in cards)
    steps, errors = step_form.steps_of(step_form.cards_from_form(_posted(cards)))
    assert errors == {}
    assert steps == STEPS
