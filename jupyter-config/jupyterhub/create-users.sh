#!/usr/bin/env bash
# Create the OS accounts of the example hub's demo users: alice, bob and admin (a hub admin).
# Idempotent; run as root. With SWM_DEMO_PASSWORD set, it also sets their password for PAM login
# (the hub's default authenticator); without it, they log in only with API tokens.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "create-users.sh: run as root (it adds OS accounts)" >&2
  exit 1
fi
for user in alice bob admin; do
  if ! id -u "$user" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$user"
    echo "created user $user"
  fi
  if [ -n "${SWM_DEMO_PASSWORD:-}" ]; then
    echo "$user:$SWM_DEMO_PASSWORD" | chpasswd
  fi
done
