# syntax=docker/dockerfile:1.7
# The GGUF model server (models/gguf_server), the image of aks/base/gguf-server/deployment.yaml.
#
#   docker build -f docker/gguf-server.Dockerfile -t llmp-gguf-server .                     # CPU
#   docker build -f docker/gguf-server.Dockerfile --build-arg VARIANT=cuda -t llmp-gguf-server:cuda .
#
# llama-cpp-python is compiled once, in its own stage, from the version pinned in pyproject.toml;
# changing the server's code rebuilds only the last layer. CPU builds target no particular CPU
# (GGML_NATIVE=OFF) so the image runs on any node size of the GGUF pool.

ARG VARIANT=cpu
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_VERSION=12.6.3

# -- base images per variant ------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build-cpu
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BLAS=OFF"

FROM ${PYTHON_IMAGE} AS runtime-cpu
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu24.04 AS build-cuda
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-dev \
    build-essential cmake git && rm -rf /var/lib/apt/lists/*
ARG CUDA_ARCHITECTURES="80;86;89;90"
ENV CMAKE_ARGS="-DGGML_CUDA=ON -DGGML_NATIVE=OFF -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES}"

FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu24.04 AS runtime-cuda
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# -- llama-cpp-python, built once --------------------------------------------------------------------
FROM build-${VARIANT} AS llama
WORKDIR /src
COPY pyproject.toml .
# The pinned requirements of the `gguf` extra (the server's dependencies), read from pyproject.toml.
RUN python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['gguf']))" > requirements.txt \
    && grep '^llama-cpp-python' requirements.txt > llama.txt
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/venv/bin/pip wheel --no-cache-dir --no-deps -w /wheels -r llama.txt

# -- the server's environment ------------------------------------------------------------------------
FROM llama AS deps
RUN /opt/venv/bin/pip install --no-cache-dir --find-links /wheels -r requirements.txt

FROM runtime-${VARIANT} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LLMP_GGUF_HOST=0.0.0.0 \
    LLMP_GGUF_PORT=8081 \
    LLMP_GGUF_CACHE_DIR=/var/cache/llmp/gguf
RUN groupadd --gid 10001 llmp && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin llmp \
    && mkdir -p /var/cache/llmp/gguf && chown -R 10001:10001 /var/cache/llmp
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
# The server needs only the models package (models/gguf_server imports models.*, never functions).
COPY models/ /app/models/
USER 10001:10001
EXPOSE 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/health', timeout=2)"
CMD ["python", "-m", "models.gguf_server.app"]
