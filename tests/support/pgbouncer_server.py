# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A throw-away PgBouncer in front of a PostgreSQLServer: session pooling (the mode the store needs: session
settings and session advisory locks), its default reset query DISCARD ALL, a Unix socket in a private folder, no
authentication on that socket. Run as the ``postgres`` user when root, like the server."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time

from postgresql_server import PORT  # pylint: disable=import-error

PGBOUNCER_PORT = 6432  # names the socket file only


def find_pgbouncer() -> str | None:
    for candidate in (os.environ.get('PGBOUNCER'), '/usr/sbin/pgbouncer', shutil.which('pgbouncer')):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def pgbouncer_unavailable() -> str | None:
    """None when a PgBouncer can be started here, else the reason to skip."""
    if find_pgbouncer() is None:
        return 'PgBouncer is not installed: apt-get install pgbouncer, or set PGBOUNCER'
    return None


class PgBouncer:
    def __init__(self, server):
        self.server = server
        self.base: str | None = None
        self.process: subprocess.Popen | None = None

    def start(self) -> PgBouncer:
        self.base = tempfile.mkdtemp(prefix='cfpgb-', dir='/tmp')
        config = os.path.join(self.base, 'pgbouncer.ini')
        with open(config, 'w', encoding='utf-8') as handle:
            handle.write('[databases]\n* = host=%s port=%d\n\n[pgbouncer]\nlisten_addr =\nunix_socket_dir = %s\n'
                         'listen_port = %d\nauth_type = trust\nauth_file = %s/users.txt\npool_mode = session\n'
                         'server_reset_query = DISCARD ALL\nmax_client_conn = 400\ndefault_pool_size = 60\n'
                         'ignore_startup_parameters = options\nlog_connections = 0\nlog_disconnections = 0\n'
                         'logfile = %s/pgbouncer.log\n'
                         % (self.server.socket_dir, PORT, self.base, PGBOUNCER_PORT, self.base,
                            self.base))
        with open(os.path.join(self.base, 'users.txt'), 'w', encoding='utf-8') as handle:
            handle.write('"postgres" ""\n')  # trust still needs the user listed
        prefix = []
        if os.geteuid() == 0:
            user = pwd.getpwnam('postgres')
            for path in (self.base, config, os.path.join(self.base, 'users.txt')):
                os.chown(path, user.pw_uid, user.pw_gid)
            prefix = ['runuser', '-u', 'postgres', '--']
        os.chmod(self.base, 0o700)
        self.process = subprocess.Popen(prefix + [find_pgbouncer(), config], cwd='/', stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        socket = os.path.join(self.base, '.s.PGSQL.%d' % PGBOUNCER_PORT)
        deadline = time.monotonic() + 30
        while not os.path.exists(socket):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError('pgbouncer did not start: %s' % self.log())
            time.sleep(0.05)
        return self

    def log(self) -> str:
        path = os.path.join(self.base or '', 'pgbouncer.log')
        if not os.path.exists(path):
            return ''
        with open(path, encoding='utf-8', errors='replace') as handle:
            return handle.read()[-3000:]

    def url(self, dbname: str, user: str = 'postgres') -> str:
        return 'postgresql://%s@/%s?host=%s&port=%d' % (user, dbname, self.base, PGBOUNCER_PORT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.base:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
