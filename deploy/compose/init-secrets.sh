#!/bin/sh
# Makes every secret of the compose stack once, in secrets/: random values, and
# the same value wherever two services share one (the PostgreSQL password in the
# database URL, the TURN, API and metrics secrets). Never overwrites.
set -eu
cd "$(dirname "$0")"
if [ -e secrets/controlplane.env ] || [ -e secrets/postgres_password ]; then
    echo "init-secrets.sh: secrets/ already has secrets; move them away first" >&2
    exit 1
fi

random() { # $1 random bytes as hex
    head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'
}
postgres_password=$(random 24)
secret_key=$(random 32)
media_api_secret=$(random 32)
turn_secret=$(random 32)
media_metrics_secret=$(random 24)
grafana_admin_password=$(random 16)

umask 077
mkdir -p secrets
sed -e "s/CHANGE_ME_POSTGRES_PASSWORD/$postgres_password/" \
    -e "s/CHANGE_ME_SECRET_KEY/$secret_key/" \
    -e "s/CHANGE_ME_API/$media_api_secret/" \
    -e "s/CHANGE_ME_TURN_SECRET/$turn_secret/" \
    controlplane.env.example >secrets/controlplane.env
sed -e "s/CHANGE_ME_API/$media_api_secret/" \
    -e "s/CHANGE_ME_TURN_SECRET/$turn_secret/" \
    -e "s/CHANGE_ME_MEDIA_METRICS_SECRET/$media_metrics_secret/" \
    media.env.example >secrets/media.env
printf '%s' "$postgres_password" >secrets/postgres_password
printf '%s' "$turn_secret" >secrets/turn_secret
printf '%s' "$media_metrics_secret" >secrets/media_metrics_secret
printf '%s' "$grafana_admin_password" >secrets/grafana_admin_password
# the containers read these as users of their own (postgres, nobody, grafana);
# the folder itself stays closed to other users of this host
chmod 0644 secrets/postgres_password secrets/turn_secret \
    secrets/media_metrics_secret secrets/grafana_admin_password
chmod 0700 secrets
echo "secrets made in $(pwd)/secrets (Grafana's admin password: secrets/grafana_admin_password)"
