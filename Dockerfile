# Beeldbel: one image for the control plane and the media server, run as a
# non-root user. The entry point is `beeldbel`; the command says which process:
#   docker run ... beeldbel:0.1.0 controlplane       (the default)
#   docker run ... beeldbel:0.1.0 mediaserver
# Both read the TOML file mounted at /etc/beeldbel/beeldbel.toml, plus
# BEELDBEL_<SECTION>_<KEY> variables (secrets). Nothing here makes a dev CA or
# an account: certificates are mounted, the first admin is made with
# `beeldbel admin user-add` in a terminal, or unattended with
# `beeldbel-create-admin NAME`, which logs no password (deploy/README.md).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Stage 1: build the wheels (Beeldbel's with the media server's C path, gcc).
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY beeldbel ./beeldbel
COPY controlplane ./controlplane
COPY mediaserver ./mediaserver
COPY web ./web
# a regular (non-editable) build: web/ goes in as package data (beeldbel.web),
# the migrations with controlplane.storage
RUN pip wheel --wheel-dir /wheels .

# Stage 2: the runtime, without compiler or sources.
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BEELDBEL_CONFIG=/etc/beeldbel/beeldbel.toml
# Pango, HarfBuzz's subsetter and a font: WeasyPrint lays out the pilot
# report's PDF with them (the Makefile's pdf-deps installs the same)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 \
       libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 beeldbel \
    && useradd --system --uid 10001 --gid beeldbel --home-dir /srv/beeldbel \
       --no-create-home --shell /usr/sbin/nologin beeldbel
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links /wheels /wheels/beeldbel-*.whl \
    && rm -rf /wheels \
    && mkdir -p /srv/beeldbel/var /etc/beeldbel \
    && chown -R 10001:10001 /srv/beeldbel
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/beeldbel-healthcheck
COPY --chmod=0755 deploy/docker/create-admin.sh /usr/local/bin/beeldbel-create-admin

# the data dir ([server] data_dir = "var", relative to the working directory)
WORKDIR /srv/beeldbel
VOLUME ["/srv/beeldbel/var"]
USER 10001:10001
# 8443 control plane (HTTPS, or HTTP behind a TLS proxy), 8444 media server
# (signalling, API, /metrics), 9464 control-plane /metrics, 40000/udp media
EXPOSE 8443/tcp 8444/tcp 9464/tcp 40000/udp
# /healthz of whichever process runs here (compose and Kubernetes use their own
# checks and probes, with /readyz too)
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["beeldbel-healthcheck", "https://127.0.0.1:8443/healthz", "http://127.0.0.1:8443/healthz", "http://127.0.0.1:8444/healthz", "https://127.0.0.1:8444/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["beeldbel"]
CMD ["controlplane"]
