#!/bin/sh
# check-lb.sh — polluxd behind a load balancer: two replicas, steady load,
# SIGKILL of one and SIGTERM of the other (tests/lb/lb.mjs). Part of
# `make check-slow`. Needs nginx (Debian: nginx-light) and node; installs
# nothing: without nginx it is skipped (exit 77). PX_LB=haproxy runs the
# same test through conf/haproxy/polluxd.cfg instead (Debian: haproxy).
set -eu
: "${NODE:=node}"
: "${PX_LB:=nginx}"
case $PX_LB in
nginx | haproxy) ;;
*) echo "check-lb: PX_LB must be nginx or haproxy" >&2; exit 1 ;;
esac
bin=${PX_LB_BIN:-}
if [ -z "$bin" ]; then
    for n in "$PX_LB" "/usr/sbin/$PX_LB"; do
        if command -v "$n" >/dev/null 2>&1; then bin=$(command -v "$n"); break; fi
    done
fi
if [ -z "$bin" ]; then
    echo "check-lb: SKIP: $PX_LB is not installed (apt-get install $([ "$PX_LB" = nginx ] && echo nginx-light || echo haproxy))" >&2
    exit 77
fi
if ! command -v "$NODE" >/dev/null 2>&1; then
    echo "check-lb: node not found" >&2
    exit 1
fi
PX_LB_BIN=$bin
export PX_LB PX_LB_BIN
exec "$NODE" "${PX_SRCDIR:-.}/tests/lb/lb.mjs"
