# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pickup_portal role (issue 13), as far as this container allows: systemd does not run here, so the role runs
with ``--tags portal_config,portal_code`` (config, secrets, unit file and the copied library in the test's folders),
and the rendered unit's own ExecStart line and environment then start gunicorn with TLS and serve a pickup page."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import ssl
import stat
import subprocess
import time
import urllib.request

import pytest
from browsers_support import free_port, make_server_pki
from integration_support import INTEGRATION
from portal_support import gunicorn_binary
from test_pickup_portal import PASSPHRASE, Officer

PLAYBOOK = INTEGRATION / 'playbooks' / 'pickup_portal_role.yml'


def unit_settings(unit: str) -> dict:
    """Key=value lines of a unit file (Environment= collected as a dict)."""
    settings = {'Environment': {}}
    for line in unit.splitlines():
        key, sep, value = line.partition('=')
        if not sep or line.startswith('#'):
            continue
        if key == 'Environment':
            name, _sep, env_value = value.partition('=')
            settings['Environment'][name] = env_value
        else:
            settings[key] = value
    return settings


def role_vars(tmp_path: pathlib.Path, officer: Officer, port: int, **extra) -> dict:
    return dict({
        'pickup_portal_ca_path': officer.path, 'pickup_portal_ca_passphrase': PASSPHRASE,
        'pickup_portal_base_url': 'https://127.0.0.1:%d' % port, 'pickup_portal_port': port,
        'pickup_portal_user': 'root', 'pickup_portal_group': 'root',
        'pickup_portal_install_dir': str(tmp_path / 'opt'), 'pickup_portal_config_dir': str(tmp_path / 'etc'),
        'pickup_portal_systemd_dir': str(tmp_path / 'systemd'), 'pickup_portal_start': False}, **extra)


def test_the_role_renders_private_config_and_a_confined_unit_that_serves(ansible, tmp_path):
    if gunicorn_binary() is None:
        pytest.skip('gunicorn is missing: pip install -r requirements-dev.txt')
    officer = Officer(tmp_path, ansible.collections)
    (tmp_path / 'systemd').mkdir()
    pki = make_server_pki(tmp_path)
    port = free_port()
    variables = role_vars(tmp_path, officer, port, pickup_portal_tls_certificate=str(pki['cert']),
                          pickup_portal_tls_private_key=str(pki['key']))
    run = ansible.run(PLAYBOOK, variables, args=['--tags', 'portal_config,portal_code', '--diff'])
    assert run.returncode == 0, run.explain()
    assert PASSPHRASE not in run.output

    config_dir = tmp_path / 'etc'
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    for name in ('portal.json', 'secret-key', 'ca-passphrase'):
        assert stat.S_IMODE((config_dir / name).stat().st_mode) == 0o600, name
    config = json.loads((config_dir / 'portal.json').read_text())
    assert config == {'ca_path': officer.path, 'ca_passphrase_file': str(config_dir / 'ca-passphrase'),
                      'secret_key_file': str(config_dir / 'secret-key'), 'base_url': 'https://127.0.0.1:%d' % port,
                      'trusted_proxies': [], 'max_body_bytes': 4096, 'throttle_failures': 20,
                      'throttle_minutes': 15}
    secret_key = (config_dir / 'secret-key').read_text()
    assert len(secret_key) == 64

    unit = (tmp_path / 'systemd' / 'certfleet-pickup-portal.service').read_text()
    settings = unit_settings(unit)
    assert settings['User'] == 'root' and settings['NoNewPrivileges'] == 'yes'
    assert settings['ProtectSystem'] == 'strict' and settings['PrivateTmp'] == 'yes'
    assert settings['ReadWritePaths'] == officer.path
    assert settings['Environment']['CERTFLEET_PORTAL_CONFIG'] == str(config_dir / 'portal.json')
    command = shlex.split(settings['ExecStart'])
    assert command[0] == str(tmp_path / 'opt' / 'venv' / 'bin' / 'gunicorn')
    assert '--certfile' in command and '--access-logfile' not in command

    # Again: nothing changes, and the generated secret key is kept.
    again = ansible.run(PLAYBOOK, variables, args=['--tags', 'portal_config,portal_code'])
    assert again.returncode == 0 and 'changed=0' in again.stdout, again.explain()
    assert (config_dir / 'secret-key').read_text() == secret_key

    # The unit's command and environment (the library the role copied), with this machine's gunicorn in place of
    # the virtualenv's.
    library = pathlib.Path(settings['Environment']['PYTHONPATH'])
    assert (library / 'ansible_collections/certfleet/pki/plugins/module_utils/portal/app.py').is_file()
    assert not (library / 'ansible_collections/certfleet/pki/plugins/modules').exists()  # the library only
    env = dict(os.environ, CERTFLEET_PORTAL_CONFIG=settings['Environment']['CERTFLEET_PORTAL_CONFIG'],
               PYTHONPATH=str(library))
    log = tmp_path / 'gunicorn.log'
    server = subprocess.Popen([gunicorn_binary()] + command[1:] + ['--error-logfile', str(log)], env=env,
                              cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        officer.issue('alice', 'Alice Example')
        url, _pin, _created = officer.pickup('alice', 'https://127.0.0.1:%d' % port)
        context = ssl.create_default_context(cafile=str(pki['ca']))
        deadline, answer = time.monotonic() + 30, None
        while time.monotonic() < deadline and answer is None:
            try:
                with urllib.request.urlopen(url, context=context, timeout=5) as response:
                    answer = (response.status, response.headers, response.read().decode('utf-8'))
            except OSError:
                assert server.poll() is None, log.read_text() if log.exists() else 'gunicorn exited'
                time.sleep(0.3)
        assert answer is not None, log.read_text() if log.exists() else 'no answer'
        status, headers, body = answer
        assert status == 200 and 'Enter your PIN' in body
        assert 'Secure' in headers['Set-Cookie'] and 'Strict-Transport-Security' in headers
    finally:
        server.terminate()
        server.wait(timeout=15)


def _render_behind_proxy(ansible, tmp_path, port: int) -> tuple:
    """The role's config and unit for a portal behind a reverse proxy: (role variables, the unit file)."""
    officer = Officer(tmp_path, ansible.collections)
    (tmp_path / 'systemd').mkdir()
    variables = role_vars(tmp_path, officer, port, pickup_portal_behind_proxy=True,
                          pickup_portal_base_url='https://pki.example.org')
    run = ansible.run(PLAYBOOK, variables, args=['--tags', 'portal_config'])
    assert run.returncode == 0, run.explain()
    return variables, tmp_path / 'systemd' / 'certfleet-pickup-portal.service'


def test_behind_a_proxy_the_unit_serves_plain_http_and_trusts_the_proxy(ansible, tmp_path):
    variables, unit = _render_behind_proxy(ansible, tmp_path, 8080)
    command = shlex.split(unit_settings(unit.read_text())['ExecStart'])
    assert '--certfile' not in command and command[command.index('--bind') + 1] == '127.0.0.1:8080'
    assert json.loads((tmp_path / 'etc' / 'portal.json').read_text())['trusted_proxies'] == ['127.0.0.1', '::1']
    refused = ansible.run(PLAYBOOK, dict(variables, pickup_portal_behind_proxy=False),
                          args=['--tags', 'portal_config'])
    assert refused.returncode != 0 and 'pickup_portal_tls_certificate' in refused.output


def test_systemd_accepts_the_unit_and_rates_its_sandbox(ansible, tmp_path):
    """No service manager runs here, so the unit never starts; systemd's own tools still load it as the manager would
    (every setting known, ExecStart executable) and rate its sandbox offline (0 is fully confined, 10 not at all)."""
    analyze = shutil.which('systemd-analyze')
    if analyze is None:
        pytest.skip('systemd-analyze is missing (apt-get install systemd): the unit cannot be checked')
    _variables, unit = _render_behind_proxy(ansible, tmp_path, 8443)
    # Rendered as root (this test's role_vars: the role's own user does not exist here), rated as the role's
    # default unprivileged user.
    unit.write_text(unit.read_text().replace('User=root', 'User=certfleet-portal').replace(
        'Group=root', 'Group=certfleet-portal'))
    gunicorn = tmp_path / 'opt' / 'venv' / 'bin' / 'gunicorn'  # the role's virtualenv is not built by this tag
    gunicorn.parent.mkdir(parents=True)
    gunicorn.symlink_to(gunicorn_binary() or '/bin/true')
    verified = subprocess.run([analyze, 'verify', str(unit)], capture_output=True, text=True, check=False)
    assert verified.returncode == 0 and verified.stderr.strip() == '', verified.stderr
    rated = subprocess.run([analyze, 'security', '--offline=true', '--threshold=20', '--no-pager', str(unit)],
                           capture_output=True, text=True, check=False)
    assert rated.returncode == 0, rated.stdout[-2000:] + rated.stderr
    score = float(re.search(r'Overall exposure level for \S+: ([0-9.]+)', rated.stdout).group(1))
    assert score <= 2.0, rated.stdout[-2000:]  # 1.7 with this unit: systemd's "OK" band ends at 4.9
