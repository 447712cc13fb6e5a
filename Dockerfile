# Beeldbel: control plane and media server in one image, run as a non-root user.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

RUN groupadd --system beeldbel && useradd --system --gid beeldbel --home /srv/beeldbel beeldbel

# Build and install from a scratch folder that is deleted afterwards: `beeldbel run`
# starts `python -m controlplane`/`mediaserver` in the working directory, and source
# folders there would shadow the installed packages (which alone have web/ as
# beeldbel.web and the built C path).
WORKDIR /tmp/build
COPY pyproject.toml setup.py README.md LICENSE ./
COPY beeldbel ./beeldbel
COPY controlplane ./controlplane
COPY mediaserver ./mediaserver
COPY web ./web
# a regular install: web/ goes in as package data (beeldbel.web), the migrations
# with controlplane.storage; gcc builds the media server's C path
# (mediaserver/fastpath/) and goes again
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir . \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
    && cd / && rm -rf /tmp/build \
    && mkdir -p /srv/beeldbel/var && chown -R beeldbel:beeldbel /srv/beeldbel/var

WORKDIR /srv/beeldbel
USER beeldbel
# 8443 HTTPS (control plane), 8444 signalling, 40000/udp media
EXPOSE 8443 8444 40000/udp
ENV BEELDBEL_SERVER_HOST=0.0.0.0 BEELDBEL_MEDIASERVER_HOST=0.0.0.0
CMD ["beeldbel", "run"]
