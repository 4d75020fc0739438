"""Probe, classifier and cascade maths, and training on a tiny model built in code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from alignlab.guard.cascade import calibrate, rate_threshold
from alignlab.guard.classifier import ExchangeClassifier, streaming_loss
from alignlab.guard.features import FeatureStore
from alignlab.guard.probe import (
    LengthReference,
    LinearProbe,
    fit_length_reference,
    max_scores,
    probe_loss,
    train_probe,
    window_mean,
)
from alignlab.guard.recipe import Recipe
from alignlab.models.padding import pad


def test_window_mean_is_a_causal_sliding_mean() -> None:
    z = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    out = window_mean(z, mask, 2)
    assert out[0, :4].tolist() == pytest.approx([1.0, 1.5, 2.5, 3.5])


def test_probe_loss_weights_confident_positions() -> None:
    mask = torch.ones(1, 4)
    flat = probe_loss(torch.tensor([[0.0, 0.0, 0.0, 0.0]]), mask, torch.tensor([1.0]), 1)
    assert float(flat) == pytest.approx(float(torch.log(torch.tensor(2.0))), abs=1e-5)
    spike = probe_loss(torch.tensor([[0.0, 0.0, 0.0, 6.0]]), mask, torch.tensor([1.0]), 1)
    assert spike < flat  # one confident harmful position carries a harmful exchange


def test_streaming_loss_rewards_a_raised_score_that_stays() -> None:
    mask = torch.ones(1, 3)
    y = torch.tensor([1.0])
    late = streaming_loss(torch.tensor([[-4.0, -4.0, 4.0]]), mask, y, 1.0)
    never = streaming_loss(torch.tensor([[-4.0, -4.0, -4.0]]), mask, y, 1.0)
    assert late < never
    probs = torch.sigmoid(torch.tensor([[-1.0, 2.0, 0.0]]))
    q = 0.5 * torch.cummax(probs, 1).values + 0.5 * probs
    expected = torch.nn.functional.binary_cross_entropy(q, torch.zeros_like(q))
    assert float(
        streaming_loss(torch.tensor([[-1.0, 2.0, 0.0]]), mask, torch.tensor([0.0]), 0.5)
    ) == pytest.approx(float(expected), abs=1e-6)


def synthetic_store(n: int = 60, width: int = 12, seed: int = 0) -> tuple[FeatureStore, list[float]]:
    """Harmful rows carry a signal in feature 0 on a few tokens; harmless rows do not."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for i in range(n):
        x = rng.standard_normal((int(rng.integers(8, 20)), width)).astype(np.float16)
        if i % 2:
            x[-3:, 0] += 4.0
        rows.append(x)
        labels.append(float(i % 2))
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    return FeatureStore(np.concatenate(rows), offsets), labels


def test_the_probe_learns_a_signal_and_round_trips(tmp_path: Path) -> None:
    store, labels = synthetic_store()
    probe, history = train_probe(store, list(range(60)), labels, [1], window=4, epochs=15, lr=0.05)
    assert history[-1] < history[0]
    scores = max_scores(probe, store, list(range(60)))
    harmful = [s for s, y in zip(scores, labels, strict=True) if y]
    harmless = [s for s, y in zip(scores, labels, strict=True) if not y]
    auroc = np.mean([h > b for h in harmful for b in harmless])
    assert auroc > 0.95
    probe.save(tmp_path / "p")
    again = LinearProbe.load(tmp_path / "p")
    assert max_scores(again, store, [1, 2]) == pytest.approx(max_scores(probe, store, [1, 2]), abs=1e-5)


def test_a_length_reference_takes_the_growth_of_the_peak_out_of_benign_scores() -> None:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    # benign noise: a longer exchange's running peak is higher only because it is longer
    benign = [rng.standard_normal(int(n)).tolist() for n in rng.integers(4, 400, size=300)]
    reference = fit_length_reference(benign)
    assert reference.positions[:3] == (1, 2, 4) and reference.positions[-1] <= 256
    assert list(reference.values) == sorted(reference.values), "a peak can only grow"
    raw = [max(t) for t in benign]
    adjusted = [max(np.asarray(t) - reference.at(np.arange(1, len(t) + 1))) for t in benign]
    lengths = [len(t) for t in benign]
    assert spearmanr(lengths, raw).statistic > 0.5
    assert abs(spearmanr(lengths, adjusted).statistic) < 0.15
    # interpolation in log length, constant beyond the ends
    two = LengthReference((2, 8), (1.0, 2.0))
    assert two.at([1, 2, 4, 8, 100]).tolist() == pytest.approx([1.0, 1.0, 1.5, 2.0, 2.0])
    assert LengthReference.from_dict(two.to_dict()) == two
    with pytest.raises(ValueError, match="20 benign exchanges"):
        fit_length_reference(benign[:5])


def test_a_probe_with_a_reference_streams_adjusted_scores_and_round_trips(tmp_path: Path) -> None:
    store, labels = synthetic_store()
    probe, _ = train_probe(store, list(range(60)), labels, [1], window=4, epochs=2, lr=0.05)
    raw = probe.stream_scores(store.rows(3))
    probe.reference = LengthReference((1, 4), (0.5, 1.5))
    adjusted = probe.stream_scores(store.rows(3))
    assert adjusted != pytest.approx(raw)
    assert probe.stream_scores(store.rows(3), raw=True) == pytest.approx(raw)
    offsets = probe.reference.at(np.arange(1, len(raw) + 1))
    assert adjusted == pytest.approx((np.asarray(raw) - offsets).tolist())
    probe.save(tmp_path / "p")
    again = LinearProbe.load(tmp_path / "p")
    assert again.reference == probe.reference
    assert again.stream_scores(store.rows(3)) == pytest.approx(adjusted, abs=1e-5)


def test_thresholds_meet_their_target_rates() -> None:
    rng = np.random.default_rng(0)
    probe, clf = rng.standard_normal(2000), rng.standard_normal(2000)
    assert np.mean(probe >= rate_threshold(probe, 0.05)) <= 0.05
    assert np.mean(probe >= rate_threshold(probe, 0.05)) >= 0.049
    t = calibrate(probe, clf, Recipe(target_escalation=0.1, target_flag_rate=0.01))
    escalated = probe >= t["probe_threshold"]
    flagged = escalated & (0.55 * probe + 0.45 * clf >= t["ensemble_threshold"])
    assert np.mean(escalated) == pytest.approx(0.1, abs=0.002)
    assert 0.009 <= np.mean(flagged) <= 0.01


def test_the_classifier_trains_on_the_policy_and_round_trips(tiny_backend: Any, tmp_path: Path) -> None:
    from alignlab.guard.train import fit_classifier

    rows = [[5, 6, 7, 8, 9 + (i % 2) * 40] * 2 for i in range(32)]
    labels = [float(i % 2) for i in range(32)]
    recipe = Recipe(classifier_layers=1, classifier_epochs=3, classifier_lr=5e-3, validation_fraction=0.0)
    before = ExchangeClassifier.from_policy(tiny_backend.model, 1)
    model, history = fit_classifier(tiny_backend.model, rows, labels, recipe, name="exchange")
    assert history["train"][-1] < history["train"][0] and history["validation"] == []
    assert not torch.equal(model.head.weight, before.head.weight)
    scores = [max(s) for s in model.token_scores(rows)]
    assert np.mean([s for s, y in zip(scores, labels, strict=True) if y]) > np.mean(
        [s for s, y in zip(scores, labels, strict=True) if not y]
    )
    model.save(tmp_path / "c")
    again = ExchangeClassifier.load(tmp_path / "c", tiny_backend.model)
    np.testing.assert_allclose(again.token_scores(rows[:2]), model.token_scores(rows[:2]), atol=1e-5)
    _, mask = pad([[1, 2, 3], [4, 5]])
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0]]


def test_incremental_classifier_scores_equal_a_full_pass(tiny_backend: Any, tiny_guard: Path) -> None:
    from alignlab.guard.classifier import ClassifierStream

    model = ExchangeClassifier.load(tiny_guard / "exchange_classifier", tiny_backend.model)
    row = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    stream = ClassifierStream(model)
    peaks = [stream.feed(row[a:b]) for a, b in ((0, 6), (6, 7), (7, 7), (7, 13))]
    full = model.token_scores([row])[0]
    expected = [max(full[:b]) for b in (6, 7, 7, 13)]
    np.testing.assert_allclose(peaks, expected, atol=1e-5)
    assert stream.seen == len(row)


def test_early_stopping_keeps_the_best_validation_epoch(tiny_backend: Any) -> None:
    from alignlab.guard.train import fit_classifier, validation_loss

    rows = [[5, 6, 7, 8, 9 + (i % 2) * 40] * 2 for i in range(48)]
    labels = [float(i % 2) for i in range(48)]
    keys = [f"request {i}" for i in range(48)]
    recipe = Recipe(classifier_layers=0, classifier_epochs=12, classifier_lr=5e-2, classifier_patience=1,
                    validation_fraction=0.25)  # fmt: skip
    model, curves = fit_classifier(tiny_backend.model, rows, labels, recipe, name="exchange", keys=keys)
    assert model.layers == tiny_backend.model.config.num_hidden_layers, "0 layers: the whole policy"
    assert len(curves["validation"]) == len(curves["train"]) >= 2
    best = curves["best_epoch"]
    assert curves["validation"][best] == min(curves["validation"])
    if curves["stopped_early"]:
        assert len(curves["train"]) == best + 1 + recipe.classifier_patience < recipe.classifier_epochs
    from alignlab.core.splits import unit_hash

    held = [i for i, k in enumerate(keys) if unit_hash(f"validation:{k}") < 0.25]
    again = validation_loss(model, [rows[i] for i in held], [labels[i] for i in held], recipe)
    assert again == pytest.approx(curves["validation"][best], rel=1e-4), "the best epoch's weights were kept"


def _other_model(tiny_model_dir: Path, out: Path, *, same_tokenizer: bool) -> Path:
    """A second random-init model (wider, deeper) with the tiny policy's tokenizer or another one."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    if not same_tokenizer:
        tok.add_tokens(["<an-extra-token>"])
    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_a_separate_backbone_trains_saves_and_loads_by_spec(
    tiny_backend: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from alignlab.guard.classifier import load_backbone
    from alignlab.guard.train import fit_classifier

    spec = str(_other_model(tiny_model_dir, tmp_path / "other", same_tokenizer=True))
    backbone = (spec, load_backbone(spec, tiny_backend))
    rows = [[5, 6, 7, 8, 9 + (i % 2) * 40] * 2 for i in range(16)]
    recipe = Recipe(classifier_layers=0, classifier_epochs=1, validation_fraction=0.0)
    model, _ = fit_classifier(
        tiny_backend.model,
        rows,
        [float(i % 2) for i in range(16)],
        recipe,
        name="exchange",
        backbone=backbone,
    )
    assert model.layers == 3 and model.head.in_features == 48  # the other model's depth and width
    model.save(tmp_path / "c")
    again = ExchangeClassifier.load(tmp_path / "c", tiny_backend.model)  # finds its backbone by spec
    assert again.source == spec and again.head.in_features == 48
    np.testing.assert_allclose(again.token_scores(rows[:2]), model.token_scores(rows[:2]), atol=1e-5)


def test_a_backbone_with_another_tokenizer_is_refused(
    tiny_backend: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from alignlab.errors import ConfigError
    from alignlab.guard.classifier import load_backbone

    spec = str(_other_model(tiny_model_dir, tmp_path / "other", same_tokenizer=False))
    with pytest.raises(ConfigError, match="another tokenizer than the policy"):
        load_backbone(spec, tiny_backend)


def test_bf16_training_follows_fp32_and_a_bad_precision_is_refused(tiny_backend: Any) -> None:
    from alignlab.errors import ConfigError
    from alignlab.guard.train import fit_classifier

    rows = [[5, 6, 7, 8, 9 + (i % 2) * 40] * 2 for i in range(16)]
    labels = [float(i % 2) for i in range(16)]
    curves = {}
    for precision in ("no", "bf16"):
        recipe = Recipe(classifier_layers=1, classifier_epochs=2, validation_fraction=0.25,
                        classifier_precision=precision)  # fmt: skip
        _, curves[precision] = fit_classifier(tiny_backend.model, rows, labels, recipe, name="exchange")
    np.testing.assert_allclose(curves["bf16"]["train"], curves["no"]["train"], atol=0.05)
    with pytest.raises(ConfigError, match="classifier_precision"):
        Recipe(classifier_precision="fp8")


def test_probe_batches_hold_every_row_once_and_rows_of_similar_length() -> None:
    from alignlab.guard.probe import _length_batches

    rng = np.random.default_rng(0)
    order = rng.permutation(200)
    lengths = {int(r): int(r) * 10 for r in order}  # row r is r*10 tokens long
    batches = _length_batches(order, lengths, 8, rng)
    assert sorted(int(r) for b in batches for r in b) == list(range(200))
    spread = [max(lengths[int(r)] for r in b) - min(lengths[int(r)] for r in b) for b in batches]
    assert np.median(spread) < 400  # a random batch of 8 of 200 would span about 1,500 tokens


def test_training_batches_group_rows_of_similar_length() -> None:
    from alignlab.guard.train import length_grouped

    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.choice([20, 40, 300, 700], size=200)]
    indices = list(range(1000, 1200))
    epoch = length_grouped(indices, lengths, 8, seed=1)
    assert sorted(i for b in epoch for i in b) == indices and all(len(b) <= 8 for b in epoch)
    assert epoch != length_grouped(indices, lengths, 8, seed=2)

    def padded(batches: list[list[int]]) -> int:
        return sum(len(b) * max(lengths[i - 1000] for i in b) for b in batches)

    shuffled = [int(i) for i in rng.permutation(indices)]
    at_random = [shuffled[s : s + 8] for s in range(0, 200, 8)]
    assert padded(epoch) < 0.8 * padded(at_random)
