# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real clients for the deployment tests: nginx with mTLS and a CRL, headless Firefox ESR and Chromium, curl.

The server's own certificate comes from a throwaway server CA made here (our CA issues client certificates
only). nginx logs the serial and verification result of every client certificate it sees; the tests read that
log, so what they assert is what the server saw, not what a page or a playbook claims.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:  # pragma: no cover - the test venv has cryptography
    pass

SERVER_CA_NICKNAME = 'certfleet test server CA'
QUIET_FIREFOX_PREFS = {
    'app.update.enabled': False, 'app.update.auto': False, 'browser.shell.checkDefaultBrowser': False,
    'datareporting.healthreport.uploadEnabled': False, 'datareporting.policy.dataSubmissionEnabled': False,
    'toolkit.telemetry.enabled': False, 'security.OCSP.enabled': 0, 'services.settings.server': 'http://127.0.0.1:9/',
    'network.captive-portal-service.enabled': False, 'network.connectivity-service.enabled': False,
    'extensions.update.enabled': False, 'browser.safebrowsing.malware.enabled': False,
    'browser.safebrowsing.phishing.enabled': False, 'browser.safebrowsing.downloads.enabled': False,
    'browser.startup.homepage_override.mstone': 'ignore', 'browser.aboutwelcome.enabled': False,
}
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                  '--disable-component-update', '--no-first-run', '--disable-sync', '--disable-quic',
                  '--disable-features=Translate,OptimizationHints,MediaRouter']


def require_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.fail('missing %s: run tests/setup/install-system-packages.sh as root' % ', '.join(missing))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def normalize_serial(text: str) -> str:
    return text.strip().upper().lstrip('0') or '0'


def make_server_pki(folder: pathlib.Path) -> dict:
    """A server CA and a certificate for 127.0.0.1/localhost."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_CA_NICKNAME)])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, '127.0.0.1')]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1')),
                                                          x509.DNSName('localhost')]), critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .sign(ca_key, hashes.SHA256()))
    paths = {'ca': folder / 'server-ca.pem', 'cert': folder / 'server.pem', 'key': folder / 'server.key'}
    paths['ca'].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths['cert'].write_bytes(server.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM))
    paths['key'].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    os.chmod(paths['key'], 0o600)
    return paths


class MtlsServer:
    """nginx on 127.0.0.1 requiring a client certificate from ``client_ca`` and checking ``crl``."""

    def __init__(self, folder: pathlib.Path, client_ca: pathlib.Path, crl: pathlib.Path, extra_ports: int = 0):
        """``extra_ports``: that many more server blocks (same certificate, client CA, CRL and log) on ports of their
        own, for tests that need distinct URLs (``self.urls``; ``self.url`` is the first)."""
        require_tools('nginx')
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.ports = [free_port() for _number in range(1 + extra_ports)]
        self.port = self.ports[0]
        self.urls = ['https://127.0.0.1:%d/' % port for port in self.ports]
        self.url = self.urls[0]
        self.pki = make_server_pki(folder)
        self.log = folder / 'mtls.log'
        self.pid_file = folder / 'nginx.pid'
        (folder / 'tmp').mkdir(exist_ok=True)
        self.config = folder / 'nginx.conf'
        self.config.write_text('''daemon off;
worker_processes 1;
pid {f}/nginx.pid;
error_log {f}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {f}/tmp; proxy_temp_path {f}/tmp; fastcgi_temp_path {f}/tmp;
  uwsgi_temp_path {f}/tmp; scgi_temp_path {f}/tmp;
  log_format mtls 'status=$status serial=$ssl_client_serial verify="$ssl_client_verify" ua="$http_user_agent"'
                  ' port=$server_port';
{servers}}}
'''.format(f=folder, servers=''.join('''  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_verify_client on;
    ssl_client_certificate {client_ca};
    ssl_crl {crl};
    access_log {log} mtls;
    default_type text/html;
    location / {{ return 200 "<html><body><p id=\\"serial\\">serial=$ssl_client_serial</p></body></html>\\n"; }}
  }}
'''.format(port=port, cert=self.pki['cert'], key=self.pki['key'], client_ca=client_ca, crl=crl, log=self.log)
            for port in self.ports)))
        self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(['nginx', '-c', str(self.config), '-p', str(self.folder)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError('nginx exited: %s' % self.process.stderr.read().decode())
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError('nginx did not listen on %d' % self.port)

    def _workers(self, master: int) -> set:
        try:
            return set(pathlib.Path('/proc/%d/task/%d/children' % (master, master)).read_text().split())
        except OSError:
            return set()

    def reload(self) -> None:
        """nginx reads a new CRL only after SIGHUP: wait until every old worker is gone and new ones serve.

        A fixed sleep is not enough on a loaded machine: a request may still reach an old worker, which accepts
        the revoked certificate with the old CRL.
        """
        master = int(self.pid_file.read_text())
        old = self._workers(master)
        os.kill(master, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            current = self._workers(master)
            if current and not current & old:
                return
            time.sleep(0.1)
        raise AssertionError('nginx did not replace its workers within 60 s after SIGHUP (old %s, now %s)'
                             % (sorted(old), sorted(self._workers(master))))

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def entries(self) -> list:
        if not self.log.exists():
            return []
        result = []
        for line in self.log.read_text().splitlines():
            match = re.match(r'status=(\d+) serial=(\S*) verify="([^"]*)" ua="([^"]*)"(?: port=(\d+))?', line)
            if match:
                result.append({'status': int(match.group(1)), 'serial': normalize_serial(match.group(2))
                               if match.group(2) != '-' else None, 'verify': match.group(3), 'ua': match.group(4),
                               'port': int(match.group(5)) if match.group(5) else None})
        return result

    def last_from(self, agent: str, port: int | None = None) -> dict:
        matching = [e for e in self.entries() if agent in e['ua'] and port in (None, e['port'])]
        log = self.log.read_text() if self.log.exists() else '(none)'
        assert matching, 'nginx saw no request from %s; log:\n%s' % (agent, log)
        return matching[-1]


def firefox_profile(home: pathlib.Path, name: str = 'default-esr') -> pathlib.Path:
    """A Firefox profile as Firefox lays it out (profiles.ini + installs.ini), without cert9.db yet."""
    root = home / '.mozilla' / 'firefox'
    profile = root / ('certfleet.%s' % name)
    profile.mkdir(parents=True, exist_ok=True)
    (root / 'profiles.ini').write_text('[Profile0]\nName=%s\nIsRelative=1\nPath=certfleet.%s\nDefault=1\n\n'
                                       '[General]\nStartWithLastProfile=1\nVersion=2\n' % (name, name))
    (root / 'installs.ini').write_text('[3B6073811A6ABF12]\nDefault=certfleet.%s\nLocked=1\n' % name)
    (profile / 'prefs.js').write_text(''.join('user_pref("%s", %s);\n' % (key, _js(value))
                                              for key, value in QUIET_FIREFOX_PREFS.items()))
    return profile


def _js(value) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    return '"%s"' % value


def trust_server_ca(db: pathlib.Path, server_ca: pathlib.Path) -> None:
    """The test server's CA is trusted in the browser's database (the role manages only the client CA)."""
    listing = subprocess.run(['certutil', '-L', '-d', 'sql:%s' % db], capture_output=True, text=True, check=True)
    if SERVER_CA_NICKNAME not in listing.stdout:
        subprocess.run(['certutil', '-A', '-d', 'sql:%s' % db, '-n', SERVER_CA_NICKNAME, '-t', 'C,,', '-i',
                        str(server_ca)], check=True, capture_output=True)


def firefox_visit(home: pathlib.Path, profile: pathlib.Path, url: str, screenshot: pathlib.Path) -> int:
    require_tools('firefox-esr')
    env = dict(os.environ, HOME=str(home), MOZ_DISABLE_AUTO_SAFE_MODE='1')
    completed = subprocess.run(['timeout', '90', 'firefox-esr', '--headless', '--no-remote', '--profile',
                                str(profile), '--screenshot', str(screenshot), url],
                               env=env, capture_output=True, text=True, check=False)
    return completed.returncode


def chromium_visit(home: pathlib.Path, url: str) -> str:
    require_tools('chromium')
    env = dict(os.environ, HOME=str(home))
    completed = subprocess.run(['timeout', '90', 'chromium'] + CHROMIUM_FLAGS
                               + ['--user-data-dir=%s' % (home / 'chromium-profile'), '--dump-dom', url],
                               env=env, capture_output=True, text=True, check=False)
    return completed.stdout


def curl_visit(p12: pathlib.Path, password: str, server_ca: pathlib.Path, url: str, folder: pathlib.Path) -> tuple:
    """curl with a PKCS#12; the password goes through a 0600 config file."""
    require_tools('curl')
    config = folder / 'curl.conf'
    config.write_text('cert = "%s:%s"\ncert-type = "P12"\ncacert = "%s"\nsilent\n' % (p12, password, server_ca))
    os.chmod(config, 0o600)
    completed = subprocess.run(['curl', '--config', str(config), '--write-out', '\n%{http_code}', url],
                               capture_output=True, text=True, check=False)
    config.unlink()
    body, _newline, code = completed.stdout.rpartition('\n')
    return int(code or 0), body


def nss_certificates(db: pathlib.Path) -> list:
    """(nickname, trust) lines of ``certutil -L``."""
    out = subprocess.run(['certutil', '-L', '-d', 'sql:%s' % db], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines()[3:]:
        match = re.match(r'^(.*\S)\s+(\S*,\S*,\S*)\s*$', line)
        if match:
            rows.append((match.group(1), match.group(2)))
    return rows


def nss_keys(db: pathlib.Path) -> list:
    completed = subprocess.run(['certutil', '-K', '-d', 'sql:%s' % db, '-f', '/dev/null'], capture_output=True,
                               text=True, check=False)
    return re.findall(r'^<\s*\d+>\s+\S+\s+([0-9a-f]+)', completed.stdout, re.MULTILINE)
