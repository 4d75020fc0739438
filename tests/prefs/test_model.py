"""The preference model: scores read at the end token, independent of batching and padding."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from alignlab.errors import ConfigError
from alignlab.prefs.batch import LAYOUTS, Batch, Encoder, Packed
from alignlab.prefs.data import Ranking, pair


def _max_gap(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))


@pytest.mark.parametrize("score_with", ["value", "likelihood"])
def test_scores_do_not_depend_on_batch_size_padding_side_or_layout(
    make_pm: Any, mixed: list[Ranking], score_with: str
) -> None:
    pm = make_pm(score_with=score_with)
    alone = pm.score(mixed, batch_size=1, layout="rows", padding_side="right")
    assert len({round(s, 4) for row in alone for s in row}) > 3, "scores should differ between responses"
    for batch_size, layout, side in itertools.product((1, 2, 3), LAYOUTS, ("left", "right")):
        scores = pm.score(mixed, batch_size=batch_size, layout=layout, padding_side=side)
        assert _max_gap(scores, alone) < 1e-5, (batch_size, layout, side)


def test_likelihood_is_the_mean_token_logprob_of_the_response(make_pm: Any, mixed: list[Ranking]) -> None:
    import torch

    pm = make_pm(score_with="likelihood")
    context, response = mixed[0].context, mixed[0].responses[0]
    c = pm.tokenizer(context, add_special_tokens=False)["input_ids"]
    r = pm.tokenizer(response, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = pm.lm(input_ids=torch.tensor([c + r])).logits[0].log_softmax(-1)
    expected = sum(float(logp[len(c) - 1 + i, t]) for i, t in enumerate(r)) / len(r)
    assert pm.score(mixed[:1])[0][0] == pytest.approx(expected, abs=1e-5)


def test_the_score_is_read_at_the_end_token(make_pm: Any, mixed: list[Ranking]) -> None:
    import torch

    pm = make_pm()
    batch = pm.batch(mixed, layout="rows", padding_side="left")
    assert isinstance(batch, Batch)
    rows = torch.arange(batch.ids.shape[0])
    assert (batch.ids[rows, batch.end_index] == pm.end_id).all()
    assert not (batch.ids[batch.mask.bool()] == pm.pad_id).any()
    # Changing the token at the end position changes the score: it is where the head reads.
    plain = pm.forward(batch).scores
    batch.ids[rows, batch.end_index] = pm.pad_id
    assert not torch.allclose(pm.forward(batch).scores, plain)


def test_packing_keeps_units_apart_and_reads_every_end_token(make_pm: Any, mixed: list[Ranking]) -> None:
    import torch

    pm = make_pm()
    batch = pm.batch(mixed * 2, layout="packed")
    assert isinstance(batch, Packed)
    assert (batch.ids.flatten()[batch.end_at] == pm.end_id).all()
    width = batch.ids.shape[1]
    longest = max(len(e.context) + sum(map(len, e.responses)) for e in map(pm.encoder.encode, mixed))
    assert width == longest and batch.ids.shape[0] < 6, "units share rows and rows are as wide as the longest"
    # Each context is there once: the real tokens are exactly contexts + responses.
    real = sum(len(e.context) + sum(map(len, e.responses)) for e in map(pm.encoder.encode, mixed * 2))
    assert int((batch.ids != pm.pad_id).sum()) == real
    allowed = batch.allowed[:, 0]
    # A response never sees a sibling: the first ranking's second response ignores its first one.
    first, second = (int(i) for i in batch.end_at[:2])
    row, col = divmod(second, width)
    starts = torch.nonzero(allowed[row, col]).flatten()
    assert first % width not in starts.tolist()
    # Changing another unit's tokens leaves a score unchanged; changing its own end token does not.
    plain = pm.forward(batch).scores
    other = batch.end_at[8]  # the second response of the first ranking's second copy
    batch.ids.view(-1)[other] = pm.pad_id
    changed = pm.forward(batch).scores
    assert torch.allclose(changed[:8], plain[:8], atol=1e-6) and not torch.allclose(changed, plain)


def test_first_fit_fills_rows_longest_first() -> None:
    from alignlab.prefs.batch import _first_fit

    assert _first_fit([5, 3, 4, 2, 1], 5) == [[0], [2, 4], [1, 3]]
    assert _first_fit([], 0) == []


def test_a_pad_token_equal_to_the_end_token_is_an_error(make_pm: Any) -> None:
    from alignlab.prefs.model import PreferenceModel

    pm = make_pm()
    with pytest.raises(ConfigError, match="pad token"):
        PreferenceModel(pm.lm, pm.tokenizer, end_token="<|im_end|>", pad_token="<|im_end|>")
    with pytest.raises(ConfigError, match="not one token"):
        PreferenceModel(pm.lm, pm.tokenizer, end_token="<|no such|>", pad_token="<|endoftext|>")


def test_truncation_keeps_the_response_and_is_counted(make_pm: Any) -> None:
    pm = make_pm()
    encoder = Encoder(pm.tokenizer, pm.end_id, max_tokens=24)
    long_context = "\n\nHuman: " + "the quick brown fox " * 20 + "\n\nAssistant:"
    encoded = encoder.encode(pair(long_context, " paris is the capital.", " no"))
    response = pm.tokenizer(" paris is the capital.", add_special_tokens=False)["input_ids"]
    assert encoded.responses[0] == [*response, pm.end_id]
    assert len(encoded.context) + len(encoded.responses[0]) == 24
    full = pm.tokenizer(long_context, add_special_tokens=False)["input_ids"]
    assert encoded.context == full[-len(encoded.context) :], "the context keeps its latest tokens"
    encoder.encode(pair("\n\nHuman: hi\n\nAssistant:", " ok", " no"))
    encoder.encode(pair("hi", " the lazy dog " * 30, " no"))
    assert (encoder.truncation.rankings, encoder.truncation.contexts_cut) == (3, 1)
    assert encoder.truncation.responses_cut == 1 and "1 responses cut" in encoder.truncation.summary()


def test_save_and_load_give_the_same_scores(make_pm: Any, mixed: list[Ranking], tmp_path: Path) -> None:
    from alignlab.prefs.model import PreferenceModel

    pm = make_pm()
    before = pm.score(mixed)
    loaded = PreferenceModel.load(pm.save(tmp_path / "pm"))
    assert _max_gap(loaded.score(mixed), before) < 1e-6
    assert (loaded.end_token, loaded.pad_token, loaded.score_with) == ("<|im_end|>", "<|endoftext|>", "value")


@pytest.mark.slow
def test_the_embedded_model_scores_consistently(mixed: list[Ranking]) -> None:
    from alignlab.prefs.model import ModelConfig, PreferenceModel

    pm = PreferenceModel.build(ModelConfig(layers=2, max_tokens=64))
    assert pm.end_id != pm.pad_id and pm.tokenizer.pad_token == pm.end_token, "smollm2 pads with its eos"
    alone = pm.score(mixed, batch_size=1, layout="rows")
    for layout, side in itertools.product(LAYOUTS, ("left", "right")):
        assert _max_gap(pm.score(mixed, batch_size=3, layout=layout, padding_side=side), alone) < 1e-4
    with pytest.raises(ConfigError):
        PreferenceModel(pm.lm, pm.tokenizer, end_token="<|im_end|>", pad_token=pm.tokenizer.pad_token)
