#!/usr/bin/env bash
# Installs the system packages the tests drive for real (see bindep.txt for the runtime ones).
# As root with apt-get it installs what is missing; otherwise it only reports what is missing.
set -euo pipefail

# `demo`: what `make demo` needs (NSS tools for the simulated fleet's Firefox profiles).
# `test` (default): also nginx, Firefox ESR and Chromium, the real clients of the deployment tests.
case "${1:-test}" in
  demo) packages=(openssl libnss3-tools) ;;
  *) packages=(openssl curl libnss3-tools shellcheck sqlite3 nginx-light firefox-esr chromium) ;;
esac
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing system packages (install them, or run as root): ${missing[*]}" >&2
  exit 1
fi
