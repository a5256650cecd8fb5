# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cost of a bulk request file: client_certificate_requests, a task loop, and the crypto floor, side by side.

    .venv/bin/python bench/bulk/run.py [--identities 1000] [--key-types ec-p256,rsa2048] [--reps 3] [--no-loop]

For each key type, N identities (issue lines with CN and e-mail), modern PKCS#12 (AES-256-CBC, PBKDF2-SHA256,
SHA-256 MAC) with the 2048 PBKDF2 rounds bulk files use, one CA (RSA 3072, the ca module's default key type):

  floor-1     cryptography alone, one process: key generation, certificate signing, PKCS#12 packing, per identity.
              No validation, no store, no files, no passwords to keep.
  floor-all   the same on a fork pool with one process per core: the floor the module competes with.
  library     the module's library (ca/bulk.BulkRequest) in this process on the same file: opening the CA to the
              commit, every core, the store and the files; no Python start-up or imports.
  module      ansible-playbook with one client_certificate_requests task on the request file (whole process
              wall time: Ansible start-up, validation, crypto on all cores, store transaction, 1,000 files).
  loop        ansible-playbook looping client_certificate and client_certificate_export (same PKCS#12 settings) over
              the identities, the way a playbook would without the bulk module.

The floors and the module run in rotation (--reps times); the loop runs once per key type (it takes long). Each run
starts from a copy of the same pristine CA. After every module and loop run the store and the written files are
checked (N certificates, N PKCS#12 files that open with their passwords), so a fast run that did nothing is not a
result. Writes bench/results/bulk.json and bench/results/bulk.md; logs under bench/results/bulk/.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.util
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RESULTS = os.path.join(REPO, 'bench', 'results')
WORK = os.path.join(RESULTS, 'bulk')
PASSPHRASE = 'bench-ca-passphrase'
ITERATIONS = 2048

_spec = importlib.util.spec_from_file_location('nightly_run', os.path.join(REPO, 'bench', 'nightly', 'run.py'))
nightly = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nightly)

MODULE_PLAYBOOK = '''---
- name: One bulk request file
  hosts: localhost
  gather_facts: false
  tasks:
    - name: The request file is carried out
      certfleet.pki.client_certificate_requests:
        ca_path: "{{ ca_path }}"
        ca_passphrase: "{{ ca_passphrase }}"
        src: "{{ src }}"
        dest: "{{ dest }}"
        encryption: modern
        iterations: %d
''' % ITERATIONS

LOOP_PLAYBOOK = '''---
- name: The same identities, one task per identity and step
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/certfleet.pki.ca:
      ca_path: "{{ ca_path }}"
      ca_passphrase: "{{ ca_passphrase }}"
  tasks:
    - name: A certificate per identity
      certfleet.pki.client_certificate:
        identity: "{{ item.identity }}"
        subject: {CN: "{{ item.cn }}"}
        email: "{{ item.email }}"
        key_type: "{{ key_type }}"
      loop: "{{ identities }}"
      loop_control:
        label: "{{ item.identity }}"

    - name: A PKCS#12 per identity
      certfleet.pki.client_certificate_export:
        identity: "{{ item.identity }}"
        dest: "{{ dest }}/{{ item.identity }}.p12"
        password: "{{ item.password }}"
        encryption: modern
        iterations: %d
      loop: "{{ identities }}"
      loop_control:
        label: "{{ item.identity }}"
      no_log: true
''' % ITERATIONS


def identities(count: int) -> list:
    return [{'identity': 'user%05d' % n, 'cn': 'User %05d' % n, 'email': 'user%05d@example.org' % n}
            for n in range(count)]


def write_request_file(path: str, people: list, key_type: str) -> None:
    with open(path, 'w', encoding='utf-8', newline='') as handle:
        handle.write('action\tidentity\tCN\temail\tkey_type\n')
        for person in people:
            handle.write('issue\t%s\t%s\t%s\t%s\n' % (person['identity'], person['cn'], person['email'], key_type))


def make_pristine_ca(path: str) -> None:
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.setup import ensure_ca
    if os.path.exists(path):
        shutil.rmtree(path)
    ensure_ca(ca_path=path, ca_passphrase=PASSPHRASE, subject={'CN': 'Bench Bulk CA', 'O': 'Example Org'},
              key_type='rsa3072')


def fresh_copy(pristine: str, work: str) -> str:
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work, mode=0o700)
    ca = os.path.join(work, 'ca')
    shutil.copytree(pristine, ca)
    os.makedirs(os.path.join(work, 'out'), mode=0o700)
    return ca


# -- the floor: cryptography alone -------------------------------------------------------------------------------
_FLOOR: dict = {}


def floor_one(job):
    """Key, signed certificate, PKCS#12: the work of one identity with nothing around it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    identity, key_type = job
    ca_certificate, ca_key, now = _FLOOR['ca_certificate'], _FLOOR['ca_key'], _FLOOR['now']
    key = ec.generate_private_key(ec.SECP256R1()) if key_type == 'ec-p256' else rsa.generate_private_key(65537, 2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)])
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca_certificate.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=key_type != 'ec-p256',
                                     content_commitment=False, data_encipherment=False, key_agreement=False,
                                     key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False),
                       critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name('%s@example.org' % identity)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256()))
    encryption = (PrivateFormat.PKCS12.encryption_builder().kdf_rounds(ITERATIONS)
                  .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256())
                  .build(b'floor-password-of-thirty-chars'))
    return len(pkcs12.serialize_key_and_certificates(identity.encode(), key, certificate, [ca_certificate],
                                                     encryption))


def run_floor(ca_path: str, people: list, key_type: str, processes: int) -> dict:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    with open(os.path.join(ca_path, 'ca.pem'), 'rb') as handle:
        ca_certificate = x509.load_pem_x509_certificate(handle.read())
    with open(os.path.join(ca_path, 'ca.key'), 'rb') as handle:
        ca_key = serialization.load_pem_private_key(handle.read(), PASSPHRASE.encode())
    _FLOOR.update(ca_certificate=ca_certificate, ca_key=ca_key,
                  now=datetime.datetime.now(datetime.timezone.utc))
    jobs = [(p['identity'], key_type) for p in people]
    started = time.perf_counter()
    if processes == 1:
        sizes = [floor_one(job) for job in jobs]
    else:
        chunk = max(1, min(16, len(jobs) // (processes * 8)))
        with multiprocessing.get_context('fork').Pool(processes) as pool:
            sizes = list(pool.imap_unordered(floor_one, jobs, chunksize=chunk))
    seconds = time.perf_counter() - started
    problems = [] if len(sizes) == len(jobs) and all(sizes) else ['the floor packed %d of %d' % (len(sizes), len(jobs))]
    return {'seconds': round(seconds, 3), 'problems': problems}


# -- the Ansible cases -----------------------------------------------------------------------------------------------
def run_playbook(playbook: str, extra: dict, log: str, env: dict) -> tuple:
    vars_file = log + '.vars.json'
    with open(vars_file, 'w', encoding='utf-8') as handle:
        json.dump(extra, handle)
    os.chmod(vars_file, 0o600)
    inventory = os.path.join(WORK, 'inventory.ini')
    command = [nightly.ansible_playbook(), playbook, '-i', inventory, '-e', '@' + vars_file]
    timings = log + '.tasks.json'
    env = dict(env, CERTFLEET_TASK_SECONDS=timings, ANSIBLE_CALLBACKS_ENABLED='task_seconds',
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, 'callback_plugins'))
    started = time.perf_counter()
    with open(log, 'w', encoding='utf-8') as handle:
        rc = subprocess.call(command, env=env, cwd=WORK, stdout=handle, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    os.unlink(vars_file)
    tasks = {}
    if os.path.exists(timings):
        with open(timings, encoding='utf-8') as handle:
            tasks = json.load(handle)
    return rc, seconds, sum(tasks.values())


def check_outcome(ca_path: str, out: str, people: list, passwords: dict | None) -> list:
    """The store holds one valid certificate per identity and every PKCS#12 opens with its password."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
    problems = []
    with ManagedCA(ca_path, unlock=False) as ca:
        current = {c['identity']: c['serial'] for c in ca.query(current_only=True)['certificates']}
    if sorted(current) != sorted(p['identity'] for p in people):
        problems.append('store holds %d current certificates, expected %d' % (len(current), len(people)))
    if passwords is None:  # the module: passwords.tsv of its output folder
        folders = [os.path.join(out, name) for name in os.listdir(out)]
        if len(folders) != 1:
            return problems + ['expected one output folder, found %d' % len(folders)]
        with open(os.path.join(folders[0], 'passwords.tsv'), encoding='utf-8') as handle:
            rows = list(csv.DictReader(handle, delimiter='\t'))
        files = {row['identity']: (os.path.join(folders[0], row['file']), row['password']) for row in rows}
    else:
        files = {identity: (os.path.join(out, '%s.p12' % identity), password)
                 for identity, password in passwords.items()}
    if len(files) != len(people):
        problems.append('%d PKCS#12 files, expected %d' % (len(files), len(people)))
    # Opening all of them would take as long as the run; a spread sample of 50 is opened.
    step = max(1, len(people) // 50)
    for person in people[::step]:
        path, password = files.get(person['identity'], (None, None))
        try:
            with open(path, 'rb') as handle:
                parsed = pkcs12.load_pkcs12(handle.read(), password.encode())
        except (OSError, TypeError, ValueError, AttributeError) as exc:
            problems.append('%s: %s' % (person['identity'], exc))
            continue
        if '%X' % parsed.cert.certificate.serial_number != current.get(person['identity']):
            problems.append('%s: the PKCS#12 does not hold the current certificate' % person['identity'])
    return problems


def run_module(pristine: str, people: list, key_type: str, env: dict, log_dir: str, rep: int) -> dict:
    work = os.path.join(WORK, 'run-module')
    ca = fresh_copy(pristine, work)
    src = os.path.join(work, 'requests.tsv')
    write_request_file(src, people, key_type)
    playbook = os.path.join(WORK, 'module.yml')
    log = os.path.join(log_dir, 'module-%s-%d.log' % (key_type, rep))
    rc, seconds, task_seconds = run_playbook(playbook, {'ca_path': ca, 'ca_passphrase': PASSPHRASE, 'src': src,
                                                        'dest': os.path.join(work, 'out')}, log, env)
    problems = [] if rc == 0 else ['ansible-playbook exited %d (see %s)' % (rc, log)]
    problems += check_outcome(ca, os.path.join(work, 'out'), people, None)
    # The same file again: every line is recognised as done; this is the module's cost without the crypto.
    again_log = os.path.join(log_dir, 'module-again-%s-%d.log' % (key_type, rep))
    rc, _again_seconds, again_task = run_playbook(playbook, {'ca_path': ca, 'ca_passphrase': PASSPHRASE, 'src': src,
                                                             'dest': os.path.join(work, 'out')}, again_log, env)
    with open(again_log, encoding='utf-8') as handle:
        recap = handle.read()
    if rc != 0 or not re.search(r'localhost\s+:\s+ok=1\s+changed=0\s', recap):
        problems.append('the second run of the same file was not ok/unchanged (see %s)' % again_log)
    return {'seconds': round(task_seconds, 2), 'playbook_seconds': round(seconds, 2),
            'again_seconds': round(again_task, 2), 'problems': problems, 'log': os.path.relpath(log, REPO)}


def run_library(pristine: str, people: list, key_type: str) -> dict:
    """The module's library in this process (what the issue measured): open the CA, carry out the file, commit;
    no Python start-up or imports, everything else as the module does it."""
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import BulkRequest
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.service import ManagedCA
    work = os.path.join(WORK, 'run-library')
    ca_path = fresh_copy(pristine, work)
    src = os.path.join(work, 'requests.tsv')
    write_request_file(src, people, key_type)
    out = os.path.join(work, 'out')
    started = time.perf_counter()
    with ManagedCA(ca_path, PASSPHRASE) as ca:
        BulkRequest(ca, src=src, dest=out, encryption='modern', iterations=ITERATIONS).execute()
    seconds = time.perf_counter() - started
    return {'seconds': round(seconds, 2), 'problems': check_outcome(ca_path, out, people, None)}


def run_loop(pristine: str, people: list, key_type: str, env: dict, log_dir: str) -> dict:
    import secrets
    work = os.path.join(WORK, 'run-loop')
    ca = fresh_copy(pristine, work)
    passwords = {p['identity']: secrets.token_urlsafe(24) for p in people}
    items = [dict(p, password=passwords[p['identity']]) for p in people]
    log = os.path.join(log_dir, 'loop-%s.log' % key_type)
    extra = {'ca_path': ca, 'ca_passphrase': PASSPHRASE, 'dest': os.path.join(work, 'out'), 'identities': items,
             'key_type': key_type}
    rc, seconds, task_seconds = run_playbook(os.path.join(WORK, 'loop.yml'), extra, log, env)
    problems = [] if rc == 0 else ['ansible-playbook exited %d (see %s)' % (rc, log)]
    problems += check_outcome(ca, os.path.join(work, 'out'), people, passwords)
    return {'seconds': round(task_seconds, 2), 'playbook_seconds': round(seconds, 2), 'problems': problems,
            'log': os.path.relpath(log, REPO)}


def summarise(entries: list) -> dict:
    times = [e['seconds'] for e in entries]
    summary = {'runs': len(times), 'median_s': round(statistics.median(times), 2), 'min_s': min(times),
               'max_s': max(times), 'times_s': times,
               'problems': sorted({p for e in entries for p in e['problems']})}
    if 'playbook_seconds' in entries[0]:
        summary['playbook_median_s'] = round(statistics.median(e['playbook_seconds'] for e in entries), 2)
    if 'again_seconds' in entries[0]:
        summary['again_median_s'] = round(statistics.median(e['again_seconds'] for e in entries), 2)
    return summary


def markdown(result: dict) -> str:
    lines = ['| key type | floor, 1 process (s) | floor, %d processes (s) | library (s) | module task (s) '
             '| module playbook (s) | same file again (s) | loop tasks (s) | library / floor | module task / floor '
             '| loop / module task |' % result['cores'],
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for key_type, cases in result['summary'].items():
        module = cases['module']['median_s']
        library = cases['library']['median_s']
        floor = cases['floor-all']['median_s']
        loop = cases.get('loop', {}).get('median_s')
        lines.append('| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %.2fx | %.2fx | %s |' % (
            key_type, cases['floor-1']['median_s'], floor, library, module, cases['module']['playbook_median_s'],
            cases['module']['again_median_s'],
            '%.0f' % loop if loop else '–', library / floor, module / floor,
            '%.0fx' % (loop / module) if loop else '–'))
    m = result['machine']
    lines += ['', '%d identities per key type, modern PKCS#12 (%d PBKDF2 rounds), RSA 3072 CA; medians of %d '
                  'rotated runs (the loop: one run). %s, nproc=%s (%s), %s.'
              % (result['identities'], ITERATIONS, result['reps'], m['ansible'], m['nproc'], m['cpu'] or 'unknown CPU',
                 result['date'][:10]),
              'Library: the module\'s library in the benchmark\'s process (opening the CA to the commit, no Python '
              'start-up). '
              'Module task and loop tasks: the tasks\' wall time from task start to result (the module process, its '
              'start-up and imports included); module playbook: the whole ansible-playbook process; same file again: '
              'the module task on the file it just carried out (nothing to do: start-up, reading, validation).',
              'Targets: the library within 1.5x of the floor on all cores (EC P-256), within it for RSA 2048; loop at '
              'least 20x the module.',
              'Reproduce: `.venv/bin/python bench/bulk/run.py%s`.' % result['args']]
    return '\n'.join(lines) + '\n'


def report(key_type: str, name: str, rep: int, entry: dict) -> None:
    problems = '  ' + '; '.join(entry['problems']) if entry['problems'] else ''
    print('%-8s %-10s run %d: %8.2fs%s' % (key_type, name, rep + 1, entry['seconds'], problems), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--identities', type=int, default=1000)
    parser.add_argument('--key-types', default='ec-p256,rsa2048')
    parser.add_argument('--reps', type=int, default=3, help='rotations of floor-1, floor-all and module')
    parser.add_argument('--no-loop', action='store_true', help='skip the task loop (it takes about 10 minutes '
                        'per 1,000 identities)')
    args = parser.parse_args(argv)
    key_types = args.key_types.split(',')
    nightly.link_collection()
    sys.path[:0] = [nightly.LINK_ROOT]
    from ansible_collections.certfleet.pki.plugins.module_utils.ca.bulk import available_cores

    for sub in ('tmp/local', 'tmp/remote', 'logs'):
        os.makedirs(os.path.join(WORK, sub), exist_ok=True)
    log_dir = os.path.join(WORK, 'logs')
    shutil.rmtree(log_dir)
    os.makedirs(log_dir)
    with open(os.path.join(WORK, 'module.yml'), 'w', encoding='utf-8') as handle:
        handle.write(MODULE_PLAYBOOK)
    with open(os.path.join(WORK, 'loop.yml'), 'w', encoding='utf-8') as handle:
        handle.write(LOOP_PLAYBOOK)
    with open(os.path.join(WORK, 'inventory.ini'), 'w', encoding='utf-8') as handle:
        handle.write('localhost ansible_connection=local ansible_python_interpreter=%s\n' % sys.executable)
    env = nightly.ansible_env(5)
    for name, value in (('ANSIBLE_LOCAL_TEMP', 'tmp/local'), ('ANSIBLE_REMOTE_TMP', 'tmp/remote')):
        env[name] = os.path.join(WORK, value)
    pristine = os.path.join(WORK, 'pristine-ca')
    make_pristine_ca(pristine)
    people = identities(args.identities)
    cores = available_cores()
    runs: dict = {k: {'floor-1': [], 'floor-all': [], 'library': [], 'module': [], 'loop': []} for k in key_types}
    for rep in range(args.reps):
        for key_type in key_types:
            for name in ('floor-1', 'floor-all', 'library', 'module'):
                if name == 'module':
                    entry = run_module(pristine, people, key_type, env, log_dir, rep)
                elif name == 'library':
                    entry = run_library(pristine, people, key_type)
                else:
                    entry = run_floor(pristine, people, key_type, 1 if name == 'floor-1' else cores)
                runs[key_type][name].append(entry)
                report(key_type, name, rep, entry)
    if not args.no_loop:
        for key_type in key_types:
            entry = run_loop(pristine, people, key_type, env, log_dir)
            runs[key_type]['loop'].append(entry)
            report(key_type, 'loop', 0, entry)
    summary = {k: {name: summarise(entries) for name, entries in cases.items() if entries}
               for k, cases in runs.items()}
    shown_args = ''.join([' --identities %d' % args.identities if args.identities != 1000 else '',
                          ' --key-types %s' % args.key_types if args.key_types != 'ec-p256,rsa2048' else '',
                          ' --reps %d' % args.reps if args.reps != 3 else '', ' --no-loop' if args.no_loop else ''])
    result = {'date': datetime.datetime.now(datetime.timezone.utc).isoformat(), 'machine': nightly.machine(),
              'identities': args.identities, 'reps': args.reps, 'cores': cores, 'iterations': ITERATIONS,
              'args': shown_args, 'summary': summary}
    problems = [p for cases in summary.values() for case in cases.values() for p in case['problems']]
    with open(os.path.join(RESULTS, 'bulk.json'), 'w', encoding='utf-8') as handle:
        json.dump(result, handle, indent=2)
    table = markdown(result)
    with open(os.path.join(RESULTS, 'bulk.md'), 'w', encoding='utf-8') as handle:
        handle.write(table)
    print('\n' + table)
    if problems:
        print('PROBLEMS: %s' % '; '.join(problems[:10]))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
