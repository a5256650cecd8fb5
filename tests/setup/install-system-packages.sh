#!/usr/bin/env bash
# Installs the system packages that `make demo` and `make test` need (see bindep.txt for the runtime ones).
# As root with apt-get it installs what is missing. Otherwise it says what is missing and how to install it:
# a missing required package stops the run; the packages of the root-only browser test are only reported
# (tests/integration/test_browsers.py skips itself when not run as root).
set -euo pipefail

# `venv`: what the Makefile's virtualenv needs (Debian/Ubuntu ship `python3 -m venv` without ensurepip).
# `demo`: also what `make demo` needs (NSS tools for the simulated fleet's Firefox profiles).
# `test` (default): also the tools of the tests; as root also nginx, Firefox ESR and Chromium, the real
# clients of the deployment test (chromium-driver: Selenium drives Chromium through the pickup portal, whose
# Japanese pages need fonts-noto-cjk in screenshots), the PostgreSQL server the store tests start in a
# temporary folder and the PgBouncer they put in front of it; systemd only for `systemd-analyze`, which checks
# the pickup portal's unit (no service manager runs in the test containers).
root_only=()
case "${1:-test}" in
  venv) packages=(python3-venv) ;;
  demo) packages=(python3-venv openssl libnss3-tools) ;;
  test)
    packages=(python3-venv openssl curl libnss3-tools shellcheck sqlite3)
    root_only=(nginx-light firefox-esr chromium chromium-driver fonts-noto-cjk postgresql pgbouncer systemd)
    ;;
  *) echo "usage: $0 [venv|demo|test]" >&2; exit 2 ;;
esac

is_root() { [ "$(id -u)" -eq 0 ]; }
is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

if ! command -v dpkg-query >/dev/null; then
  echo "no dpkg here: install the equivalents of these packages yourself: ${packages[*]} ${root_only[*]}" >&2
  exit 0
fi
if is_root; then
  packages+=("${root_only[@]}")
  root_only=()
fi
missing=()
for package in "${packages[@]}"; do
  is_installed "$package" || missing+=("$package")
done
missing_root_only=()
for package in "${root_only[@]}"; do
  is_installed "$package" || missing_root_only+=("$package")
done
if [ ${#missing_root_only[@]} -gt 0 ]; then
  echo "not root: the real-browser test (tests/integration/test_browsers.py) will be skipped;" \
       "it needs root and: ${missing_root_only[*]}" >&2
  case " ${missing_root_only[*]} " in
    *" postgresql "*) echo "(postgresql: the PostgreSQL store tests skip themselves without its server)" >&2 ;;
  esac
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if is_root && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them as root, e.g.: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  case " ${missing[*]} " in
    *" python3-venv "*) echo "(python3-venv: without it \`python3 -m venv\` fails, ensurepip is missing)" >&2 ;;
  esac
  exit 1
fi
