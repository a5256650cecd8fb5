# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A throw-away PostgreSQL server for the tests: the distribution's binaries, a cluster initialised in a temporary
folder, listening only on a Unix socket in that folder, stopped and removed afterwards.

PostgreSQL refuses to run as root: as root, initdb and the server run as the ``postgres`` system user
(``runuser``), and the folder is handed to it. The cluster has data checksums, so a damaged page is reported as
damaged. ``trust`` authentication on the socket, except for the role PASSWORD_ROLE, which needs its password (for
the "authentication failed" tests), and FAST_SCRAM_ROLE, whose SCRAM verifier has few rounds.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile

PASSWORD_ROLE = 'certfleet_pw'
PASSWORD = 'pw-s3cret-4711'
# A role whose verifier has 16 rounds for a long random password: what docs/awx.md advises for many short sessions.
FAST_SCRAM_ROLE = 'certfleet_fast'
FAST_SCRAM_PASSWORD = 'Zr4Kq8Wm2Xv6Tn1Bc9Hs3Jd7Lf5Gp0Ya8Ue2Io4'
FAST_SCRAM_ROUNDS = 16
PORT = 5432  # only names the socket file: the socket folder is private to this server


def _load_filter(name: str):
    """The collection's filter module, loaded from its file: integration tests do not import the collection."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'plugins', 'filter', name + '.py')
    spec = importlib.util.spec_from_file_location('certfleet_filter_' + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def find_bindir() -> str | None:
    """PG_BINDIR, or the newest /usr/lib/postgresql/*/bin with initdb, pg_ctl and postgres."""
    candidates = [os.environ['PG_BINDIR']] if os.environ.get('PG_BINDIR') else []
    candidates += sorted(glob.glob('/usr/lib/postgresql/*/bin'), key=lambda p: int(p.split('/')[-2]), reverse=True)
    for bindir in candidates:
        if all(os.access(os.path.join(bindir, tool), os.X_OK) for tool in ('initdb', 'pg_ctl', 'postgres')):
            return bindir
    return None


def why_unavailable() -> str | None:
    """None when a server can be started here, else the reason to skip."""
    if find_bindir() is None:
        return ('the PostgreSQL server binaries (initdb, pg_ctl, postgres) are not installed: apt-get install '
                'postgresql, or set PG_BINDIR')
    try:
        import psycopg  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    except ImportError:
        return 'psycopg (3) is not installed: pip install "psycopg[binary]"'
    if os.geteuid() == 0:
        try:
            pwd.getpwnam('postgres')
        except KeyError:
            return 'running as root and there is no postgres system user to run the server as'
        if shutil.which('runuser') is None:
            return 'running as root and runuser is missing'
    return None


class PostgreSQLServer:
    def __init__(self):
        self.bindir = find_bindir()
        self.base = None
        self.counter = 0

    @property
    def data(self) -> str:
        return os.path.join(self.base, 'data')

    @property
    def socket_dir(self) -> str:
        return self.base

    def _run(self, *command: str) -> None:
        prefix = ['runuser', '-u', 'postgres', '--'] if os.geteuid() == 0 else []
        argv = prefix + [os.path.join(self.bindir, command[0])] + list(command[1:])
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd='/')
        if done.returncode != 0:
            log = ''
            if os.path.exists(os.path.join(self.base, 'server.log')):
                with open(os.path.join(self.base, 'server.log'), encoding='utf-8', errors='replace') as handle:
                    log = handle.read()[-3000:]
            raise RuntimeError('%s failed (%d): %s %s\n%s'
                               % (command[0], done.returncode, done.stdout, done.stderr, log))

    def start(self) -> PostgreSQLServer:
        # /tmp, not pytest's tmp_path: the socket path must stay under 107 bytes and be reachable by postgres
        self.base = tempfile.mkdtemp(prefix='cfpg-', dir='/tmp')
        if os.geteuid() == 0:
            user = pwd.getpwnam('postgres')
            os.chown(self.base, user.pw_uid, user.pw_gid)
        os.chmod(self.base, 0o700)
        self._run('initdb', '-D', self.data, '-U', 'postgres', '-A', 'trust', '--data-checksums', '--no-sync',
                  '--encoding=UTF8', '--locale=C.UTF-8')
        with open(os.path.join(self.data, 'pg_hba.conf'), 'w', encoding='utf-8') as handle:
            handle.write('local all %s,%s scram-sha-256\nlocal all all trust\n' % (PASSWORD_ROLE, FAST_SCRAM_ROLE))
        self.resume()
        scram_sha_256 = _load_filter('scram_sha_256').scram_sha_256
        with self.admin() as conn:
            conn.execute("CREATE ROLE %s LOGIN PASSWORD '%s'" % (PASSWORD_ROLE, PASSWORD))
            conn.execute("CREATE ROLE %s LOGIN PASSWORD '%s'"
                         % (FAST_SCRAM_ROLE, scram_sha_256(FAST_SCRAM_PASSWORD, FAST_SCRAM_ROUNDS)))
        return self

    def resume(self) -> None:
        """Start the server on the existing cluster."""
        options = "-k %s -c listen_addresses='' -p %d -c fsync=off -c max_connections=200" % (self.socket_dir, PORT)
        self._run('pg_ctl', '-D', self.data, '-l', os.path.join(self.base, 'server.log'), '-w', '-t', '60',
                  '-o', options, 'start')

    def halt(self) -> None:
        """Stop the server, keeping the cluster."""
        self._run('pg_ctl', '-D', self.data, '-w', '-t', '60', '-m', 'fast', 'stop')

    def stop(self) -> None:
        if self.base is None:
            return
        try:
            self.halt()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def url(self, dbname: str, user: str = 'postgres', password: str | None = None) -> str:
        auth = user + (':' + password if password else '')
        return 'postgresql://%s@/%s?host=%s&port=%d' % (auth, dbname, self.socket_dir, PORT)

    def admin(self, dbname: str = 'postgres'):
        import psycopg  # pylint: disable=import-outside-toplevel
        return psycopg.connect(host=self.socket_dir, port=PORT, user='postgres', dbname=dbname, autocommit=True)

    def create_database(self) -> str:
        self.counter += 1
        name = 'certfleet_test_%d' % self.counter
        with self.admin() as conn:
            conn.execute('CREATE DATABASE %s' % name)
            conn.execute('GRANT ALL ON DATABASE %s TO %s, %s' % (name, PASSWORD_ROLE, FAST_SCRAM_ROLE))
        return name

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name)

    def file_of(self, dbname: str, relation: str) -> str:
        with self.admin(dbname) as conn:
            relative = conn.execute('SELECT pg_relation_filepath(%s)', (relation,)).fetchone()[0]
            conn.execute('CHECKPOINT')
        return os.path.join(self.data, relative)
