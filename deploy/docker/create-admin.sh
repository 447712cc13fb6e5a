#!/bin/sh
# beeldbel-create-admin NAME: make the first admin account, once, unattended
# (the Kubernetes Job in deploy/kubernetes/admin-job.yaml), without its password
# ever reaching a log: a Job's output is kept as one. Its one-time password is
# then made in a terminal, whose output is no log:
#   kubectl -n beeldbel exec -it deploy/beeldbel-controlplane -- beeldbel admin user-reset NAME
set -eu
name="${1:?usage: beeldbel-create-admin NAME}"
if beeldbel admin user-list | cut -f1 | grep -qxF -- "$name"; then
    echo "staff account $name exists: nothing to do"
    exit 0
fi
# user-add prints the one-time password: it goes nowhere
beeldbel admin user-add "$name" --role admin >/dev/null
echo "created admin account $name; its password is not shown here."
echo "Get a one-time password in a terminal: beeldbel admin user-reset $name"
