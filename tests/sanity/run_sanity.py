"""Run `ansible-test sanity` on a copy of the collection laid out as ansible_collections/certfleet/pki.

Offline, ansible-test's own virtualenvs try to download a get-pip script; a stand-in that bootstraps pip with
ensurepip is put into ansible-test's cache first (see shared RECIPES). Package installs still go to PyPI.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Outside the work tree: ansible-test skips every target of a collection below a hidden folder such as .build.
SANITY_ROOT = pathlib.Path(os.environ.get('CERTFLEET_SANITY_DIR', '/tmp/certfleet-sanity'))
COPY = SANITY_ROOT / 'ansible_collections' / 'certfleet' / 'pki'
SKIP_TOP = {'.git', '.venv', '.build', '.ruff_cache', '.pytest_cache', 'tests/output'}

GET_PIP_STAND_IN = '''import subprocess, sys
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '-q'] + args)
'''


def pinned_pip_version() -> str:
    import ansible_test
    source = pathlib.Path(ansible_test.__file__).parent / '_internal' / 'python_requirements.py'
    match = re.search(r"pip='([0-9.]+)'", source.read_text())
    if not match:
        raise SystemExit('cannot find the pip version ansible-test pins in %s' % source)
    return match.group(1)


def install_get_pip_stand_in() -> None:
    cache = pathlib.Path.home() / '.ansible' / 'test' / 'cache'
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / ('get_pip_%s.py' % pinned_pip_version().replace('.', '_'))
    if not target.exists() or target.read_text() != GET_PIP_STAND_IN:
        target.write_text(GET_PIP_STAND_IN)


def collection_files() -> list[str]:
    try:
        out = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'], cwd=ROOT,
                             check=True, capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if line and (ROOT / line).is_file()]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for path in ROOT.rglob('*'):
            relative = path.relative_to(ROOT).as_posix()
            if path.is_file() and not any(relative == s or relative.startswith(s + '/') for s in SKIP_TOP):
                files.append(relative)
        return files


def main() -> int:
    install_get_pip_stand_in()
    if COPY.exists():
        shutil.rmtree(COPY)
    for relative in collection_files():
        target = COPY / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    python = '%d.%d' % sys.version_info[:2]
    env = dict(os.environ)
    env.pop('ANSIBLE_COLLECTIONS_PATH', None)
    command = [str(pathlib.Path(sys.executable).parent / 'ansible-test'), 'sanity', '--python', python, '--local',
               '--color', 'no'] + sys.argv[1:]
    print('+ (cd %s && %s)' % (COPY, ' '.join(command)), flush=True)
    return subprocess.call(command, cwd=COPY, env=env)


if __name__ == '__main__':
    sys.exit(main())
