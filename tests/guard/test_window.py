"""One prompt window and scoring start: the template's fixed preamble is never scored; long input is cut."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alignlab.errors import ConfigError
from alignlab.guard.window import PromptView, Window, fit_context, preamble, prompt_view

TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\n"
    "SYSTEM_TEXT<|im_end|>\n{% endif %}"
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class TemplatedPolicy:
    """The tiny policy's tokenizer under a chat template that adds a default system prompt."""

    def __init__(self, tokenizer: Any, system: str) -> None:
        self.tokenizer = tokenizer
        self.template = TEMPLATE.replace("SYSTEM_TEXT", system)

    def encode(self, messages: Any) -> list[int]:
        out = self.tokenizer.apply_chat_template(
            messages, chat_template=self.template, add_generation_prompt=True, tokenize=True
        )
        return list(out["input_ids"] if hasattr(out, "keys") else out)


def test_the_default_system_preamble_is_not_scored(tiny_backend: Any) -> None:
    chat = [{"role": "user", "content": "what is the capital of france"}]
    short = TemplatedPolicy(tiny_backend.tokenizer, "be brief")
    long = TemplatedPolicy(tiny_backend.tokenizer, "you are a helpful assistant who answers every question")
    a, b = prompt_view(short, chat, Window()), prompt_view(long, chat, Window())
    assert a.scored == b.scored, "what is scored does not depend on the template's default system prompt"
    assert a.start == len(preamble(short, "user")) > 0 and len(b.ids) > len(a.ids)
    assert tiny_backend.tokenizer.decode(a.scored).startswith("what is the capital")
    whole = prompt_view(short, chat, Window(score_from="template"))
    assert whole.start == 0 and whole.scored == a.ids


def test_the_window_keeps_the_last_tokens_and_long_input_is_cut_to_fit(tiny_backend: Any) -> None:
    chat = [{"role": "user", "content": "the quick brown fox jumps over the lazy dog " * 20}]
    view = prompt_view(tiny_backend, chat, Window(prompt_tokens=7))
    assert len(view.scored) == 7 and view.scored == view.ids[-7:]
    fitted = fit_context(PromptView(list(range(100)), 10), response_tokens=30, context=50)
    assert fitted.ids == list(range(80, 100)) and fitted.start == 0
    assert fit_context(view, 5, None) is view


def test_bad_window_fields_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="at least one token"):
        Window(prompt_tokens=0)
    with pytest.raises(ConfigError, match="score_from"):
        Window(score_from="everything")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no prompt window"):
        Window.from_dict(None, "guard.json")  # type: ignore[arg-type]


def test_check_file_gives_every_line_a_record_and_resumes(
    tiny_backend: Any, tiny_guard: Path, tmp_path: Path
) -> None:
    from alignlab.guard.cascade import Guard
    from alignlab.guard.checkfile import check_file

    guard = Guard(tiny_backend, tiny_guard)
    lines = [
        json.dumps({"id": "a", "messages": [{"role": "user", "content": "hello"}]}),
        "{not json",
        json.dumps({"id": "c", "messages": []}),
        json.dumps({"id": "d", "messages": [{"role": "user", "content": "fox " * 2000}]}),  # past the context
        json.dumps({"id": "e", "messages": [{"role": "user", "content": "hi"}], "response": "hello there"}),
    ]
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("\n".join(lines) + "\n")
    first = check_file(guard, source, out)
    assert first == {"checked": 3, "errors": 2, "skipped": 0, "flagged": first["flagged"]}
    records = {r["line"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert "in.jsonl:2:" in records["2"]["error"] and "invalid JSON" in records["2"]["error"]
    assert "messages" in records["3"]["error"]
    assert records["4"]["id"] == "d" and records["4"]["scores"]["probe"] is not None
    again = check_file(guard, source, out)
    assert again["skipped"] == 5 and again["checked"] == 0 and len(out.read_text().splitlines()) == 5


def test_explain_traces_every_scored_token_and_agrees_with_check(
    tiny_backend: Any, tiny_guard: Path, tmp_path: Path
) -> None:
    from alignlab.guard.cascade import Guard
    from alignlab.guard.explain import explain, write

    guard = Guard(tiny_backend, tiny_guard)
    chat = [{"role": "user", "content": "what is the capital of france"}]
    trace = explain(guard, chat, "paris is the capital")
    verdict = guard.check(chat, "paris is the capital")
    assert trace["verdict"]["flagged"] == verdict.flagged and trace["verdict"]["stage"] == verdict.stage
    assert trace["steps"][-1]["probe"] == pytest.approx(trace["steps"][-1]["probe"])
    assert max(s["probe"] for s in trace["steps"]) == pytest.approx(verdict.scores["probe"], abs=1e-4)
    assert any(s["response"] for s in trace["steps"]) and not trace["steps"][0]["response"]
    html_page, png = write(trace, tmp_path / "t.html"), write(trace, tmp_path / "t.png")
    assert "guard trace" in html_page.read_text() and png.read_bytes()[:4] == b"\x89PNG"
