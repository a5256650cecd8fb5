#!/usr/bin/env bash
# The built tarball installs offline and the installed copy works (not the source tree).
# Usage: install-check.sh VENV_BIN BUILD_DIR TARBALL
set -euo pipefail
bin=$1 build=$2 tarball=$3
rm -rf "$build/installed"
export ANSIBLE_COLLECTIONS_PATH=$build/installed
"$bin/ansible-galaxy" collection install --offline -p "$build/installed" "$tarball" >/dev/null
"$bin/ansible-doc" certfleet.pki.client_certificate >/dev/null
"$bin/ansible-playbook" -i localhost, -c local -e ansible_python_interpreter="$bin/python" \
    -e certfleet_demo_dir="$build/install-check" tests/setup/installed_smoke.yml
echo "install-check: $tarball installs offline and runs"
