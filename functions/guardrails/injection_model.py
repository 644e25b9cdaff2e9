"""A learned prompt-injection detector beside the heuristics: a linear model over hashed n-grams.

In-process and CPU-only, numpy for the weights: no model server, no torch, about a millisecond for a
KB of text. Features: the text normalised as the heuristics see it (NFKC, invisible characters gone,
look-alikes folded), lower-cased; word unigrams and bigrams and character 3- to 5-grams, each hashed
(CRC-32) into ``2**bits`` buckets, counted once, the vector L2-normalised. A logistic regression
over them was trained by ``bench/train_injection.py`` on public jailbreak and injection collections
(``bench/injection_data.py``) and is shipped as ``data/injection_linear.npz`` (float16 weights, with
its provenance in the file). Long texts are scored on their first and last
:data:`MAX_CHARS` / 2 characters (a jailbreak's framing is at its start, a payload at its end).

The model's score is calibrated so that its chosen operating point (at most 2% false positives on
the training collections' benign texts) reads 0.7, the default ``injection.threshold``.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.guardrails.injection import HeuristicInjectionDetector, InjectionScore, normalize

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MODEL_PATH = Path(__file__).with_name("data") / "injection_linear.npz"
MAX_CHARS = 8192
_WORDS = re.compile(r"\w+")
OPERATING_SCORE = 0.7
"""What the operating point chosen in training reads as (the default policy threshold)."""


def features(text: str, bits: int) -> list[int]:
    """The hashed feature indices of ``text`` (each once)."""
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS // 2] + " " + text[-MAX_CHARS // 2:]
    words = _WORDS.findall(normalize(text)[0].lower())
    mask = (1 << bits) - 1
    grams = {f"w:{w}" for w in words}
    grams |= {f"b:{a} {b}" for a, b in itertools.pairwise(words)}
    joined = f" {' '.join(words)} "
    for n in (3, 4, 5):
        grams |= {joined[i:i + n] for i in range(len(joined) - n + 1)}
    return sorted({zlib.crc32(g.encode("utf-8", "surrogatepass")) & mask for g in grams})


@dataclass(frozen=True)
class LinearModel:
    weights: npt.NDArray[np.float32]
    bias: float
    bits: int
    offset: float
    """Added to the logit so that the operating point reads :data:`OPERATING_SCORE`."""
    info: dict[str, Any]

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> LinearModel:
        import json

        import numpy as np

        with np.load(path, allow_pickle=False) as f:
            weights = f["weights"].astype(np.float32)
            meta = json.loads(str(f["meta"]))
        if weights.shape != (1 << int(meta["bits"]),):
            raise ValueError(f"{path}: {weights.shape[0]} weights for {meta['bits']} bits")
        return cls(weights, float(meta["bias"]), int(meta["bits"]), float(meta["offset"]), meta)

    def logit(self, text: str) -> float:
        idx = features(text, self.bits)
        if not idx:
            return self.bias
        return float(self.weights[idx].sum()) / math.sqrt(len(idx)) + self.bias

    def score(self, text: str) -> float:
        z = self.logit(text) + self.offset
        return 1.0 / (1.0 + math.exp(-z)) if z > -60 else 0.0


class LearnedInjectionDetector:
    """The linear model behind the :class:`functions.guardrails.injection.InjectionDetector`
    protocol: loaded on first use (a worker thread), texts scored in a worker thread too."""

    name = "learned_injection"

    def __init__(self, path: Path = MODEL_PATH) -> None:
        self._path = path
        self._model: LinearModel | None = None
        self._lock = threading.Lock()

    def model(self) -> LinearModel:
        with self._lock:
            if self._model is None:
                self._model = LinearModel.load(self._path)
            return self._model

    def score_texts(self, texts: list[str]) -> float:
        m = self.model()
        return max((m.score(t) for t in texts if t.strip()), default=0.0)


CLASSIFIER_CATEGORY = 0.5
"""A learned score from which the decision names ``classifier`` among the families matched."""


class CombinedInjectionDetector:
    """The heuristics and the learned model together (``LLMP_GUARDRAILS_INJECTION=combined``, the
    default): ``1 - (1 - heuristic) * (1 - learned)``, the way the heuristics combine their own
    patterns, so two moderate signals make a strong one. Both parts are in ``parts``, so a tenant
    whose policy says ``injection.classifier: false`` is judged on the heuristics alone.

    If the model cannot score (its file missing or unreadable, a bug), the heuristics' score is
    returned with ``degraded`` set: the engine counts it as a failure of ``learned_injection`` and
    goes on with the heuristics, or refuses when the policy says ``on_classifier_error: refuse``."""

    name = "combined_injection"
    cpu_bound = True
    """Scored in the guardrails' detector pool (``Guardrails.detect``), never on the event loop."""

    def __init__(self, learned: LearnedInjectionDetector | None = None) -> None:
        self.heuristic = HeuristicInjectionDetector()
        self.learned = learned or LearnedInjectionDetector()

    async def score(self, prompts: Sequence[str], documents: Sequence[str]) -> InjectionScore:
        h = await self.heuristic.score(prompts, documents)
        try:
            learned = self.learned.score_texts([*prompts, *documents])  # already off the loop
        except Exception as e:  # noqa: BLE001 - the heuristics still stand; the engine counts it
            return InjectionScore(h.score, h.categories, {"heuristic": h.score},
                                  degraded=type(e).__name__)
        categories = dict(h.categories)
        if learned >= CLASSIFIER_CATEGORY:
            categories["classifier"] = 1
        combined = 1.0 - (1.0 - h.score) * (1.0 - learned)
        return InjectionScore(round(combined, 4), categories,
                              {"heuristic": h.score, "learned": round(learned, 4)})
