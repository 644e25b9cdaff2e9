"""docker/gguf-server.Dockerfile (it cannot be built here: no Docker engine): every COPY source exists
and is in the build context, and the image runs what the manifest expects (command, port, user)."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib

from tests.deploy.conftest import ROOT, find, render

DOCKERFILE = ROOT / "docker/gguf-server.Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def in_context(path: str) -> bool:
    included = False
    for pattern in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            included = negate
    return included


def test_copy_sources_exist_in_context() -> None:
    copies = [rest for op, rest in instructions() if op == "COPY" and "--from" not in rest]
    assert copies
    for rest in copies:
        *sources, _dest = rest.split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: missing"
            assert in_context(src.rstrip("/")), f"COPY {src}: excluded by .dockerignore"


def test_stages_and_variants() -> None:
    ops = instructions()
    stages = {m.group(1) for op, rest in ops if op == "FROM" and (m := re.search(r" AS (\S+)$", rest))}
    assert {"build-cpu", "build-cuda", "runtime-cpu", "runtime-cuda", "llama", "runtime"} <= stages
    assert ("ARG", "VARIANT=cpu") in ops
    assert any("GGML_CUDA=ON" in rest for op, rest in ops if op == "ENV")
    # llama-cpp-python comes from pyproject's gguf extra, built in the `llama` stage only
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gguf"]
    assert any(d.startswith("llama-cpp-python==") for d in extra)
    wheel_builds = [rest for op, rest in ops if op == "RUN" and "pip wheel" in rest]
    assert len(wheel_builds) == 1 and "llama.txt" in wheel_builds[0]


def test_image_matches_manifest() -> None:
    ops = dict(instructions())
    container = find(render("prod"), "Deployment", "gguf-smollm2-135m")["spec"]["template"]["spec"]
    (c,) = container["containers"]
    assert json.loads(ops["CMD"]) == c["command"]
    assert int(ops["EXPOSE"]) == c["ports"][0]["containerPort"]
    user, group = ops["USER"].split(":")
    assert int(user) == container["securityContext"]["runAsUser"] != 0
    assert int(group) == container["securityContext"]["runAsGroup"]
