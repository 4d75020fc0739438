from __future__ import annotations

from pathlib import Path

import pytest

from alignlab.errors import CapabilityError, EndpointError, ModelNotFoundError, UnknownNameError
from alignlab.models import load_backend
from alignlab.models.base import Backend, SamplingParams


def test_unknown_spec_lists_known_names_and_suggests_one() -> None:
    with pytest.raises(UnknownNameError) as info:
        load_backend("smolm2")
    assert info.value.suggestion == "smollm2"
    assert "openai" in str(info.value) and "hf" in str(info.value)


def test_scripted_spec_answers_its_script() -> None:
    backend = load_backend("scripted:fine, thanks")
    assert isinstance(backend, Backend)
    (gen,) = backend.generate([[{"role": "user", "content": "how are you?"}]], SamplingParams())
    assert gen.text == "fine, thanks" and gen.finish_reason == "stop"


def test_a_bare_model_directory_is_an_hf_spec(tiny_model_dir: Path) -> None:
    backend = load_backend(str(tiny_model_dir))
    assert backend.context_length == 128


def test_missing_weights_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        load_backend(f"hf:{tmp_path / 'absent.gguf'}")


def test_unreachable_endpoint_names_the_url() -> None:
    from support import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = load_backend(f"openai:{url}#m")
    with pytest.raises(EndpointError, match=f"127.0.0.1:{url.split(':')[2]}"):
        backend.generate(["hi"], SamplingParams(max_new_tokens=2))
    with pytest.raises(CapabilityError):
        backend.hidden_states(["hi"])
