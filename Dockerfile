# syntax=docker/dockerfile:1
# batch-gitops controller image: `docker build -t batch-gitops .`
# Stage 1 builds the wheel (compilers and build tools stay here);
# stage 2 installs only that wheel and its runtime dependencies.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY controller/ controller/
# Dependencies are built as wheels too, so the final stage needs no compiler
# and no network access to an index beyond this stage.
RUN pip wheel --wheel-dir /wheels . \
    && ls /wheels/batch_gitops-*.whl

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="batch-gitops" \
      org.opencontainers.image.description="GitOps reconciliation controller for AWS Batch" \
      org.opencontainers.image.licenses="Apache-2.0"
# git for the source, openssh-client for ssh:// and git@host: URLs.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels /wheels/batch_gitops-*.whl \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 batch-gitops \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/batch-gitops \
       --create-home --shell /usr/sbin/nologin batch-gitops \
    && mkdir -p /var/cache/batch-gitops \
    && chown batch-gitops:batch-gitops /var/cache/batch-gitops
ENV PYTHONUNBUFFERED=1 \
    HOME=/var/lib/batch-gitops \
    BATCH_GITOPS_LISTEN=0.0.0.0:8080 \
    BATCH_GITOPS_STATE=/var/lib/batch-gitops/ledger.sqlite \
    BATCH_GITOPS_WORKDIR=/var/cache/batch-gitops \
    BATCH_GITOPS_LOG_FORMAT=json
USER 10001:10001
WORKDIR /var/lib/batch-gitops
VOLUME ["/var/lib/batch-gitops", "/var/cache/batch-gitops"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "controller.service.healthcheck"]
ENTRYPOINT ["batch-gitops", "run"]
