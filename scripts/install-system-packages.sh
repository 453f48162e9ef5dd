#!/usr/bin/env bash
# Installs the Debian packages Bandeja's test bed and demo need, and makes sure the
# PostgreSQL and RabbitMQ servers this kind of machine provides are running.
set -euo pipefail

need=()
command -v dovecot >/dev/null || need+=(dovecot-imapd dovecot-core)
command -v promtool >/dev/null || need+=(prometheus)
command -v fetchmail >/dev/null || need+=(fetchmail)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v kubectl >/dev/null || need+=(kubectl)
# make image / the image test in make chaos: build without registry access, run with runc.
for tool in buildah podman runc debootstrap; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts a system-wide Dovecot on install; the test bed runs its own on free ports.
if pgrep -x dovecot >/dev/null && [ -f /run/dovecot/master.pid ]; then
    kill "$(cat /run/dovecot/master.pid)" 2>/dev/null || true
fi
# Likewise a system Prometheus (Debian's runs as user prometheus): the end-to-end alert
# test runs its own, as root, which another test run on this machine may be using.
pkill -u prometheus -x prometheus 2>/dev/null || true

if ! pg_isready -q -h 127.0.0.1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
if ! rabbitmqctl -q status >/dev/null 2>&1; then
    rabbitmq-server -detached
    for _ in $(seq 60); do rabbitmqctl -q status >/dev/null 2>&1 && break; sleep 1; done
fi
