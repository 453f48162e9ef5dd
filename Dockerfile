# syntax=docker/dockerfile:1
# One image for every Bandeja process: `bandeja auth|fetcher|processor|relay|migrate`.
#
# Build:  docker build -t registry.example.com/bandeja/bandeja:0.1.0 .
#         (or `make image` on a machine without registry access: scripts/build-image.sh)
#
# The base is pinned to an exact Python patch release and its digest (the multi-arch index
# of the tag when it was pinned); bump both deliberately. `--build-arg BASE_IMAGE=...`
# substitutes a locally made equivalent without editing this file.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

# ---- build: install the locked dependencies and the package into a self-contained venv -
FROM ${BASE_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/bandeja
WORKDIR /src
# Exactly the locked versions, each checked against its hash (requirements.lock, made by
# `make lock`); a layer of its own so a code change does not reinstall them.
COPY requirements.lock ./
RUN /opt/bandeja/bin/pip install --require-hashes --no-deps -r requirements.lock
# .dockerignore keeps the venv, git metadata, tests, the stand-in and .env files out.
COPY . .
# Bandeja itself, built with the locked setuptools, fetching nothing.
RUN /opt/bandeja/bin/pip install --no-deps --no-build-isolation --no-index . \
 && /opt/bandeja/bin/python -m compileall -q /opt/bandeja

# ---- runtime: the venv only, no compiler, no pip cache, no source tree --------------------
FROM ${BASE_IMAGE} AS runtime

# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it without /etc/passwd
# lookups, and a passwd entry for the libraries that ask who they are.
RUN groupadd --system --gid 10001 bandeja \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin bandeja

COPY --from=build /opt/bandeja /opt/bandeja

# The root filesystem is read-only in Kubernetes: no bytecode writes (compiled at build),
# temp files and HOME under /tmp (an emptyDir there).
ENV PATH=/opt/bandeja/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    BANDEJA_LOG_FORMAT=json

USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 9191

# Exec form: `bandeja` is PID 1 and receives SIGTERM itself (each process stops cleanly
# on it). The Kubernetes manifests pass the subcommand as args.
ENTRYPOINT ["bandeja"]
CMD ["--help"]
