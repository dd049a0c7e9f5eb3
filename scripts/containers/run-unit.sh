#!/bin/sh
# Starts a systemd service the way systemd would, in a container that has
# no systemd, for the settings mod_wsgi-telemetry.service uses:
# EnvironmentFile= (a leading '-': optional), RuntimeDirectory= and
# RuntimeDirectoryMode= (created under /run, owned by User:Group), User=,
# Group= (supplementary groups: User's), NoNewPrivileges=, LimitNOFILE=
# and ExecStart= ($VAR splits into words, as systemd does). The container
# tests run the ingester's package this way: its unit file, not a command
# line of the test's, decides user, group, socket and options. Any other [Service]
# setting is named on stderr as not applied.
#
# Usage: run-unit.sh <unit file>   (as root; execs the service)
set -eu
unit="${1:?usage: run-unit.sh <unit file>}"
say() { echo "run-unit: $*" >&2; }

# One line per setting: continuation lines joined.
settings="$(sed -e ':a' -e '/\\$/ { N; s/\\\n/ /; ba' -e '}' "$unit" | sed -n '/^\[Service\]/,/^\[/ p')"
get() { printf '%s\n' "$settings" | sed -n "s/^$1=//p" | tail -1; }

for key in $(printf '%s\n' "$settings" | sed -n 's/^\([A-Za-z]*\)=.*/\1/p' | sort -u); do
    case "$key" in
        Type | User | Group | RuntimeDirectory | RuntimeDirectoryMode | EnvironmentFile | ExecStart | NoNewPrivileges | LimitNOFILE) ;;
        *) say "$key= not applied (no systemd here)" ;;
    esac
done

env_file="$(get EnvironmentFile)"
case "$env_file" in
    "") ;;
    -*) env_file="${env_file#-}"; [ -f "$env_file" ] && { set -a; . "$env_file"; set +a; } ;;
    *) set -a; . "$env_file"; set +a ;;
esac

user="$(get User)"
group="$(get Group)"
[ -n "$user" ] || { say "no User= in $unit"; exit 1; }
[ -n "$group" ] || group="$(id -gn "$user")"
dir="$(get RuntimeDirectory)"
if [ -n "$dir" ]; then
    mode="$(get RuntimeDirectoryMode)"
    mkdir -p "/run/$dir"
    chown "$user:$group" "/run/$dir"
    chmod "${mode:-0755}" "/run/$dir"
fi

nnp=""
case "$(get NoNewPrivileges)" in yes | true | on | 1) nnp="--no-new-privs" ;; esac
exec_start="$(get ExecStart)"
[ -n "$exec_start" ] || { say "no ExecStart= in $unit"; exit 1; }
limit="$(get LimitNOFILE)"
[ -z "$limit" ] || ulimit -n "$limit"
umask 0022
# shellcheck disable=SC2086 # word splitting of $VAR is what systemd does
eval "set -- $exec_start"
say "as $user:$group: $*"
exec setpriv --reuid="$user" --regid="$group" --init-groups $nnp -- "$@"
