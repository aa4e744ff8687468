# syntax=docker/dockerfile:1
#
# job-executor image. The same image runs the service (`job-executor serve`, the default
# command) and the init container of job pods (`job-executor init-files`).
#
#   docker build -t ghcr.io/job-executor/job-executor:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#   docker run --rm -e RCV_HOST=0.0.0.0 -p 8080:8080 ghcr.io/job-executor/job-executor:0.1.0
#
# (The service listens on 127.0.0.1 unless RCV_HOST says otherwise; the Helm chart sets it.)
# Release tags are semantic versions (0.2.0); pre-release tags carry a suffix (0.2.0-rc.1).

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: a wheel of the package and of every dependency -------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY executor ./executor
RUN pip wheel --wheel-dir /wheels '.[otlp,speedups]'

# --- final: the installed wheels only; no sources, no build tools --------------------------
FROM ${PYTHON_IMAGE}
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="job-executor" \
      org.opencontainers.image.description="Turns CloudEvents into Kubernetes Jobs as a Keptn job/config.yaml declares" \
      org.opencontainers.image.source="https://github.com/job-executor/job-executor" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# The wheels are bind-mounted from the builder for this one step, so they never become a layer
# of the final image. --no-index: nothing is downloaded here.
# DL3013 (pin versions): /wheels holds the one wheel built from this source by the builder,
# and --no-index installs nothing else, so the version is fixed by construction.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels 'job-executor[otlp,speedups]' \
    && mkdir -p /var/lib/job-executor \
    && chown 65532:65532 /var/lib/job-executor
# The default state directory (.job-executor) is relative to the working directory, which
# belongs to the runtime user; in Kubernetes the chart mounts a volume at STATE_DIR instead.
WORKDIR /var/lib/job-executor
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["job-executor"]
CMD ["serve"]
