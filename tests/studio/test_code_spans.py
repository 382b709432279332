"""Studio shows the `backticked` parts of messages as code, and escapes everything else."""

from __future__ import annotations

from tidings.studio.templating import environment


def shown(text: str) -> str:
    return environment.from_string("{{ text | code_spans }}").render(text=text)


def test_backticked_parts_become_code() -> None:
    assert shown("Move it into `traits` and send `identify`.") == (
        "Move it into <code>traits</code> and send <code>identify</code>."
    )


def test_the_text_and_the_code_are_escaped() -> None:
    assert shown("<b>`<script>`</b>") == "&lt;b&gt;<code>&lt;script&gt;</code>&lt;/b&gt;"


def test_an_odd_backtick_is_left_as_it_is() -> None:
    assert shown("a ` b <i>") == "a ` b &lt;i&gt;"
