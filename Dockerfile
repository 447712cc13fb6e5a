# Beeldbel: control plane and media server in one image, run as a non-root user.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

RUN groupadd --system beeldbel && useradd --system --gid beeldbel --home /srv/beeldbel beeldbel

WORKDIR /srv/beeldbel
COPY pyproject.toml setup.py README.md ./
COPY common ./common
COPY controlplane ./controlplane
COPY mediaserver ./mediaserver
COPY cli ./cli
COPY certs ./certs
COPY web ./web
# editable: templates and static files in web/ are read next to the packages;
# gcc builds the media server's C path (mediaserver/fastpath/) and goes again
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir -e . \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /srv/beeldbel/var && chown -R beeldbel:beeldbel /srv/beeldbel/var

USER beeldbel
# 8443 HTTPS (control plane), 8444 signalling, 40000/udp media
EXPOSE 8443 8444 40000/udp
ENV BEELDBEL_SERVER_HOST=0.0.0.0 BEELDBEL_MEDIASERVER_HOST=0.0.0.0
CMD ["beeldbel", "run"]
