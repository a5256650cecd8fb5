#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: endpoint_reconcile
short_description: Put a host's browser, keychain and Apple profile stores in the state the CA's record says
version_added: 0.2.0
description:
  - One call per host for all the identities the host carries. For every user's Firefox profiles (found through
    C(profiles.ini), as M(certfleet.pki.firefox_profile_info) does) and, on Linux, every user's Chromium database
    (C(~/.pki/nssdb) when it holds one, otherwise C(~/.local/share/pki/nssdb), as Chromium does), on macOS every
    user's login keychain (O(keychain)), it reads what the store holds and, per identity, decides by SHA-256
    fingerprint.
  - The macOS keychain (store C(keychain)) gets the same decision as the NSS stores. It is read once with
    C(security find-certificate) and C(security find-identity) (a certificate "has its key" when it is an
    identity); missing identities are imported with C(security import) (the PKCS#12 re-packed in the legacy
    encryption macOS reads, under a one-time password) and verified by fingerprint; removals use
    C(security delete-identity) or C(delete-certificate) by SHA-1; our CA is trusted in the user's trust domain
    with C(security add-trusted-cert) when C(security verify-cert) finds it not trusted (O(keychain_trust_ca)).
  - B(present) - the store holds the identity's current certificate (O(identities[].fingerprint_sha256)) with its
    key. Nothing is written.
  - B(imported) - it was missing and O(identities[].pkcs12_path) was given; it is imported with C(pk12util) and
    then verified by fingerprint (with its key). A store without an NSS database gets one when there is something
    to import (O(create_db)).
  - B(missing) - it was missing and no PKCS#12 was given. A caller can export only the missing identities and call
    again.
  - B(removed) - the identity's other certificates of our CA (superseded or expired) and every certificate of our
    CA whose serial is in O(revoked_serials), each with its key, deleted exactly (by PKCS#11 ID, never by the
    nickname NSS shares between certificates of one subject). Removals happen after the imports.
  - B(deferred) - while an identity's current certificate is not in EVERY store of the call (missing, or its
    import failed in one of them), its superseded and expired certificates stay in all of them, so a host where
    one import fails keeps its old certificate everywhere; the call that completes the host removes them (a second
    pass over the stores, only when something waits). Revoked certificates are removed regardless.
  - B(foreign) - certificates of another issuer (checked by signature, not only by name). Listed, never touched.
  - Apple configuration profiles (store C(apple_profile), on request) are files for devices Ansible cannot reach (an
    MDM installs them), one per identity with O(identities[].apple_profile_dest). A profile is B(present) when the
    PKCS#12 it carries, opened with the password it embeds, holds the current certificate with its key and its
    root payload is our CA (the file is read, as each run's one-time transfer password differs, so a profile built
    anew is never compared byte for byte). Otherwise it is written from O(identities[].pkcs12_path) (legacy
    encryption, the one-time password embedded; needs O(identities[].apple_profile_include_password)), 0600, and
    read again; the certificate it held before is listed in B(removed). A profile holding a revoked certificate of
    our CA that cannot be replaced now is deleted; one holding another issuer's certificate is left alone and is a
    problem.
  - B(unclaimed) - certificates of our CA that no identity of this call claims (an identity this call does not
    carry). Listed, never touched, unless revoked.
  - How a certificate is attributed to an identity. The CA does not write the identity name into certificates; a
    certificate of our CA belongs to an identity when it is in O(identities[].superseded_fingerprints_sha256) or
    O(identities[].superseded_serials) (the CA's record, exact), or when it has the same subject as the
    identity's current certificate and no other identity of the call has that subject. The subject is known from
    the PKCS#12 file, from O(identities[].certificate), or from the copy the store holds. Give the superseded lists
    after a subject change.
  - Our CA is added to each store it fills with the trust O(ca_trust) (default C(T,,), client authentication
    only), as the C(firefox_nss) and C(chromium_nss) roles do; trust flags are only ever added.
  - Run as root, the work in each home runs with the rights of its user (a child process with that user's uid,
    gid and groups), NSS files that are symbolic links are refused, and the PKCS#12 data and passwords reach
    C(pk12util) through C(0600) files in a C(0700) folder that is removed afterwards.
  - A failure in one store (a planted link, a locked database, a failed import) is listed in that store's
    C(problems) and the other stores are still done. With O(fail_on_problems=true) (the default) the module then
    fails, with the full per-store result, so a nightly run does not pass when a store could not be repaired; set
    it to V(false) for a drift audit that only reports.
  - Inputs are checked before any store is read; a PKCS#12 that is not the named certificate or not issued by
    O(ca_certificate) fails the module and changes nothing.
author:
  - certfleet.pki developers (@certfleet)
attributes:
  action:
    description: An action plugin of the same name copies the controller files of O(identities[].pkcs12_src) to
      the host for the call and removes them afterwards.
    support: full
  check_mode:
    description: Reads every store and reports what would be imported, removed, created and trusted, without
      writing anything.
    support: full
  diff_mode:
    description: Per changed store, the certificates (nickname, trust flags, serial, start of the SHA-256
      fingerprint, whether the key is there) before and after; never key material.
    support: full
  idempotent:
    description: A second run with the same parameters reports C(changed=false).
    support: full
  platform:
    description:
      - Linux (Firefox and Chromium NSS databases) and macOS (Firefox NSS databases under
        C(~/Library/Application Support/Firefox) and the login keychain). The switch to each home's owner needs
        root.
      - The macOS keychain part has not run on a Mac in this project's CI (Linux); it is tested against an emulator
        of the C(security) command (its command lines and output formats) only.
      - Windows through the action plugin (see the notes); tested against an emulated store only.
    support: partial
    platforms: posix
options:
  identities:
    description: The identities this host carries, each as the CA's record has it (for example from
      M(certfleet.pki.client_certificate_info)).
    type: list
    elements: dict
    required: true
    suboptions:
      identity:
        description: The identity name, used in results only.
        type: str
        required: true
      fingerprint_sha256:
        description: SHA-256 fingerprint of the identity's current certificate (hex; colons and case do not
          matter).
        type: str
        required: true
      serial:
        description: Serial of the current certificate; checked against the PKCS#12 file when both are given.
        type: str
      certificate:
        description: The current certificate (PEM text or a path on the target), to know its subject when no
          PKCS#12 file is given.
        type: str
      pkcs12_path:
        description: A PKCS#12 file on the target with the current certificate and its key, imported where the
          identity is missing. Without it, a store that lacks the identity lists it in C(missing).
        type: path
      pkcs12_password:
        description: The password of O(identities[].pkcs12_path). Required with it.
        type: str
      pkcs12_src:
        description:
          - A PKCS#12 file on the B(controller) (for example the batch export of
            M(certfleet.pki.client_certificate_export) when the CA runs on the controller). The action plugin
            copies it to a private temporary folder of the remote user on the host, passes it as
            O(identities[].pkcs12_path) and removes it after the call.
          - Requires O(identities[].pkcs12_password_src); mutually exclusive with O(identities[].pkcs12_path).
        type: path
        version_added: 0.2.0
      pkcs12_password_src:
        description:
          - A file on the B(controller) holding the password of O(identities[].pkcs12_src) (the C(.password) file of
            a batch export with C(generate_passwords)). Read by the action plugin; the password is passed to the
            module as a secret and never shown.
        type: path
        version_added: 0.2.0
      superseded_fingerprints_sha256:
        description: SHA-256 fingerprints of this identity's older certificates (the CA's C(superseded) list).
        type: list
        elements: str
        default: []
      superseded_serials:
        description: Serials of this identity's older certificates.
        type: list
        elements: str
        default: []
      apple_profile_dest:
        description:
          - The Apple configuration profile (C(.mobileconfig)) of this identity, for the V(apple_profile) store, a
            file path on the target whose folder exists. Written with the rights of whoever controls that folder;
            a symbolic link there is refused.
        type: path
        version_added: 0.2.0
      apple_profile_include_password:
        description:
          - Let the profile carry the PKCS#12's password. The PKCS#12 a roll-out sends is protected by a one-time
            password nobody else knows, so a profile is written only with this set; deliver it through an MDM (or
            another channel as private as the key), as the C(deploy) role's C(deploy_apple_profile_include_password)
            requires. Without it a profile that lacks the current certificate is a problem of that store.
        type: bool
        default: false
        version_added: 0.2.0
  ca_certificate:
    description: The certificate of our CA, PEM text or a path on the target. A certificate is "of our CA" when
      this CA signed it.
    type: str
    required: true
  revoked_serials:
    description: Serials our CA revoked; a certificate of our CA with one of them is removed from every store,
      whichever identity it belongs to. Certificates of other issuers with the same serial are not touched.
    type: list
    elements: str
    default: []
  users:
    description:
      - Users whose homes to reconcile (homes from C(passwd)). A user that does not exist is an error.
      - Without O(users) and O(homes), every login user (uid 1000 and above, except C(nobody)) and C(root) whose
        home exists, as M(certfleet.pki.firefox_profile_info) with
        O(certfleet.pki.firefox_profile_info#module:all_users=true) finds them.
    type: list
    elements: str
  homes:
    description: Home folders to reconcile directly (homes of no login user, kiosks, tests); worked in with the
      rights of the folder's owner.
    type: list
    elements: path
  stores:
    description:
      - Which stores to reconcile. Without it, V(firefox) and V(chromium) on Linux, V(firefox) and V(keychain) on
        macOS.
      - V(chromium) (an NSS database) exists only on Linux; Chromium on macOS reads the keychain. A call on macOS
        that names V(chromium) returns RV(unsupported_platform) and changes nothing, as before macOS was supported,
        so a caller keeps sending those identities to the C(certfleet.pki.deploy) role (unless
        O(skip_unavailable_stores)).
      - V(keychain) exists only on macOS; on Linux it is an error (unless O(skip_unavailable_stores)).
      - V(apple_profile) (the profile files of O(identities[].apple_profile_dest)) exists on every system, and is
        reconciled only when named.
    type: list
    elements: str
    choices: [firefox, chromium, keychain, apple_profile]
  skip_unavailable_stores:
    description:
      - Leave out the stores of O(stores) this system does not have (V(keychain) on Linux, V(chromium) on macOS)
        and name them in RV(skipped_stores), instead of an error or RV(unsupported_platform). For a fleet whose
        identities name the stores of every system they may land on, as the C(deploy) role skips them.
    type: bool
    default: false
    version_added: 0.2.0
  keychain:
    description:
      - The keychain of each home for the V(keychain) store. V(login) is the home's login keychain
        (C(~/Library/Keychains/login.keychain-db), or C(login.keychain) before macOS 10.12); a home without one is
        skipped, as a Firefox profile that does not exist is.
      - Otherwise the path of a keychain file, relative to each home (C(~/) allowed), or absolute for a call with a
        single user or home. A keychain file that does not exist is a problem of that store.
      - The work runs as the home's owner, so the keychain is changed by its user, as
        M(certfleet.pki.keychain_certificate) requires.
    type: str
    default: login
    version_added: 0.2.0
  keychain_password:
    description:
      - The password that unlocks the keychains (the user's login password for a login keychain), given to
        C(security unlock-keychain) on its standard input. Over SSH a login keychain is locked.
      - Without it, a locked keychain is a problem of that store (found when C(security) refuses the first write
        with "User interaction is not allowed"); nothing more is written there and the other stores are still done.
    type: str
    version_added: 0.2.0
  keychain_trust_ca:
    description:
      - Trust our CA (policies C(ssl) and C(basic)) in the user's trust domain when it is not trusted yet. Since
        macOS 11 a trust change needs an interactive authorization, so on a headless Mac this is a problem of the
        store; trust the CA with a configuration profile (M(certfleet.pki.apple_profile), through an MDM) and set
        this to V(false).
    type: bool
    default: true
    version_added: 0.2.0
  ca_nickname:
    description: Nickname of our CA where it is added. Defaults to its common name.
    type: str
  ca_trust:
    description: NSS trust flags of our CA, as for C(certutil -t). C(T,,) trusts it to issue client certificates
      only; a client CA must not be trusted for servers.
    type: str
    default: T,,
  db_password:
    description: The token (primary) password of the databases, when they have one. Without it, a store with a
      token password can be read but not changed; that is a problem of that store.
    type: str
  create_db:
    description: Create the NSS database of a store that has none (a Firefox profile never opened, a user without
      a Chromium database) when an identity is to be imported there.
    type: bool
    default: true
  firefox_certificate_selection:
    description: How Firefox chooses a client certificate, kept in C(user.js) of every Firefox profile that holds
      a database (C(security.default_personal_cert)), as the C(firefox_nss) role does. V(auto) is "Select
      Automatically", V(ask) "Ask Every Time", V(unmanaged) leaves C(user.js) alone.
    type: str
    choices: [auto, ask, unmanaged]
    default: auto
  fail_on_problems:
    description: Fail the task when any store has problems (the result is returned either way).
    type: bool
    default: true
notes:
  - C(certutil) and C(pk12util) (NSS tools) are needed only when an NSS store (V(firefox), V(chromium)) is
    reconciled; C(security) only for V(keychain).
  - The keychain store is tested only against an emulator of the C(security) command in the unit tests
    (C(tests/unit/plugins/module_utils/endpoints/test_reconcile_keychain.py)); this project's CI cannot run macOS.
  - The System keychain and identity preferences are not handled by this module; see
    M(certfleet.pki.keychain_certificate). M(certfleet.pki.apple_profile) writes a profile with a password you
    choose (for a person who installs it by hand).
  - Windows hosts (a PowerShell connection) are reconciled by the action plugin of the same name, not by this
    module. It reads C(Cert:\CurrentUser\My) (or C(Cert:\LocalMachine\My)) and the thumbprints of C(Root) with
    M(ansible.windows.win_powershell), decides on the controller with the same rules as for the NSS stores
    (present, imported, missing, removed, deferred, foreign, unclaimed), imports each needed PKCS#12 with
    M(ansible.windows.win_certificate_store) (key not exportable), adds our CA to C(Root) when it is missing,
    removes exactly the certificates decided, by thumbprint, and verifies the imports by a second read. The store
    is the host's only store, so an identity's superseded and expired certificates leave in the same run once its
    current one is present, or imported and verified; after a failed import they stay. The result has one store,
    C(store=windows). Check mode reads only and predicts; diff mode shows the listing before and after.
  - On Windows the action plugin takes two options of its own (not module options) - C(windows_store_location)
    (V(current_user), the default, or V(local_machine)) and C(windows_store_ca_location) (the C(Root) store our CA
    goes to, V(local_machine) by default as in the C(windows_store) role, since adding to C(CurrentUser\Root)
    opens a confirmation dialog). PKCS#12 files are given as O(identities[].pkcs12_src) with
    O(identities[].pkcs12_password_src) and are opened and checked on the controller; O(identities[].pkcs12_path)
    is refused there. O(ca_certificate) and O(identities[].certificate) are PEM text or controller paths. O(users),
    O(homes), O(stores), O(ca_nickname), O(ca_trust), O(db_password), O(create_db) and
    O(firefox_certificate_selection) concern the NSS stores and are ignored on Windows.
  - On Windows, for a CurrentUser store run the task with C(become=true), C(become_method=runas) and the store's
    user as C(become_user), as the C(windows_store) role does (a PKCS#12 import over WinRM needs become or
    CredSSP/Kerberos delegation). The task's become applies to every call, so a C(Root) store of V(local_machine)
    needs a become user allowed to write it, and the PKCS#12 files travel to the connection's temporary folder,
    which the become user must be able to read.
  - The Windows path cannot run on this project's Linux CI; it is unit-tested against an emulated store only
    (tests/unit/plugins/action/test_endpoint_reconcile_windows.py), never against a Windows host.
  - Chromium's C(AutoSelectCertificateForUrls) policy is kept by M(certfleet.pki.chromium_policy).
seealso:
  - module: certfleet.pki.nss_certificate
  - module: certfleet.pki.firefox_profile_info
  - module: certfleet.pki.client_certificate_info
'''

EXAMPLES = r'''
- name: Every Firefox profile and Chromium database of alice and bob holds exactly the current certificates
  certfleet.pki.endpoint_reconcile:
    users: [alice, bob]
    ca_certificate: /etc/certfleet/client-ca.pem
    revoked_serials: "{{ revoked_serials_of_our_ca }}"
    identities:
      - identity: alice@laptop-17
        serial: 5F1B0C2D9E8A7B6C5D4E3F2A1B0C9D8E7F6A5B4C
        fingerprint_sha256: 3C5E0F0B8D2A6F4E1B9C7D5A3E2F1A0B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F
        certificate: "{{ alice_record.certificates[0].certificate }}"
        superseded_fingerprints_sha256: "{{ alice_record.superseded | map(attribute='fingerprint_sha256') | list }}"
      - identity: bob@laptop-17
        fingerprint_sha256: 9A8B7C6D5E4F3C5E0F0B8D2A6F4E1B9C7D5A3E2F1A0B9C8D7E6F5A4B3C2D1E0F
        pkcs12_path: /root/certfleet-transfer/bob.p12
        pkcs12_password: "{{ bob_transfer_password }}"
  become: true
  register: reconciled

- name: Only the identities that some store misses are exported
  certfleet.pki.client_certificate_export:
    ca_path: /var/lib/certfleet/ca
    identity: "{{ item }}"
    dest: "/root/certfleet-transfer/{{ item }}.p12"
    password: "{{ transfer_password }}"
  loop: "{{ reconciled.stores | map(attribute='missing') | flatten | unique }}"
  delegate_to: ca.example.org

- name: On a Mac, alice's Firefox profiles and login keychain (unlocked for the run; the CA trusted by a profile)
  certfleet.pki.endpoint_reconcile:
    users: [alice]
    keychain_password: "{{ alice_login_password }}"
    keychain_trust_ca: false
    ca_certificate: /etc/certfleet/client-ca.pem
    identities:
      - identity: alice@macbook-3
        fingerprint_sha256: 3C5E0F0B8D2A6F4E1B9C7D5A3E2F1A0B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F
        pkcs12_src: transfer/alice@macbook-3.p12
        pkcs12_password_src: transfer/alice@macbook-3.p12.password
  become: true

- name: The profile files an MDM hands to the iPhones hold the current certificates (read back, rewritten if not)
  certfleet.pki.endpoint_reconcile:
    stores: [apple_profile]
    ca_certificate: /etc/certfleet/client-ca.pem
    identities:
      - identity: carol-iphone
        fingerprint_sha256: 9A8B7C6D5E4F3C5E0F0B8D2A6F4E1B9C7D5A3E2F1A0B9C8D7E6F5A4B3C2D1E0F
        pkcs12_src: transfer/carol-iphone.p12
        pkcs12_password_src: transfer/carol-iphone.p12.password
        apple_profile_dest: /srv/mdm/profiles/carol-iphone.mobileconfig
        apple_profile_include_password: true

- name: A drift audit that only reports (check mode, no failure)
  certfleet.pki.endpoint_reconcile:
    ca_certificate: /etc/certfleet/client-ca.pem
    identities:
      - identity: alice
        fingerprint_sha256: 3C5E0F0B8D2A6F4E1B9C7D5A3E2F1A0B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F
    fail_on_problems: false
  check_mode: true
  become: true
  register: drift
'''

RETURN = r'''
stores:
  description: One entry per store visited (in check mode, what would be done).
  returned: always
  type: list
  elements: dict
  contains:
    store:
      description: C(firefox), C(chromium), C(keychain) or C(apple_profile) (C(home) when a whole home could not be
        visited); C(windows) on a Windows host.
      type: str
    identity:
      description: The one identity an C(apple_profile) store carries (its profile file); absent for the other
        stores, which carry every identity of the call.
      type: str
      returned: for C(apple_profile)
    user:
      description: The user whose home it is (C(null) for a home given in O(homes)).
      type: str
    owner:
      description: The user whose rights the work ran with (C(null) when it ran as root).
      type: str
    path:
      description: The database folder (the keychain file for C(keychain), the profile file for C(apple_profile);
        C(Cert:\CurrentUser\My) or C(Cert:\LocalMachine\My) on Windows).
      type: str
    location:
      description: Windows only - V(current_user) or V(local_machine).
      type: str
    ca_store:
      description: Windows only - the C(Root) store our CA is trusted in (C(Cert:\LocalMachine\Root) by default).
      type: str
    exists:
      description: Whether the store held a database before the run (C(null) when it could not be read).
      type: bool
    created:
      description: Whether the database was (would be) created.
      type: bool
    present:
      description: Identities whose current certificate was already there with its key.
      type: list
      elements: str
    imported:
      description: Identities imported (that would be) and verified by fingerprint.
      type: list
      elements: str
    missing:
      description: Identities not in the store afterwards (no PKCS#12 given, or the import failed).
      type: list
      elements: str
    removed:
      description: Certificates of our CA removed (that would be) with their keys.
      type: list
      elements: dict
      contains:
        identity:
          description: The identity it belonged to (C(null) for a revoked certificate no identity claims).
          type: str
        reason:
          description: C(superseded), C(expired) or C(revoked).
          type: str
        nickname:
          description: NSS nickname; for the keychain C(label/SHA-1) (the identity's label, else the common name);
            the friendly name on Windows.
          type: str
        thumbprint:
          description: Windows only - the SHA-1 thumbprint the certificate is removed by.
          type: str
        serial:
          description: Serial, upper-case hex.
          type: str
        fingerprint_sha256:
          description: SHA-256 fingerprint.
          type: str
        subject:
          description: Subject, RFC 4514.
          type: str
        issuer:
          description: Issuer, RFC 4514.
          type: str
        not_after:
          description: End of validity, ISO 8601 UTC.
          type: str
    deferred:
      description: Older certificates of an identity whose current certificate is not in the store (missing, or
        its import failed); they stay until it is, so the store keeps a working certificate. Same keys as
        RV(stores[].removed). Revoked certificates are never deferred.
      type: list
      elements: dict
    foreign:
      description: Certificates of other issuers (not CA certificates), untouched; same keys as RV(stores[].removed)
        without identity and reason.
      type: list
      elements: dict
    unclaimed:
      description: Certificates of our CA that no identity of this call claims, untouched; same keys as
        RV(stores[].foreign).
      type: list
      elements: dict
    ca_changed:
      description: C(add) when our CA was (would be) added, C(trust) when trust flags were added (for the keychain,
        when trust settings were added), else C(null).
      type: str
    preferences_changed:
      description: Whether C(user.js) was (would be) changed (Firefox).
      type: bool
    changed:
      description: Whether this store was (would be) changed.
      type: bool
    problems:
      description: What could not be done in this store, with the reason; empty when all went well.
      type: list
      elements: str
summary:
  description: Counts over all stores.
  returned: always
  type: dict
  contains:
    stores:
      description: Stores visited.
      type: int
    changed:
      description: Stores changed.
      type: int
    with_problems:
      description: Stores with problems.
      type: int
    present:
      description: Identity copies already present.
      type: int
    imported:
      description: Identity copies imported.
      type: int
    removed:
      description: Certificates removed.
      type: int
    foreign:
      description: Certificates of other issuers seen.
      type: int
    unclaimed:
      description: Certificates of our CA that no identity claims.
      type: int
    deferred:
      description: Older certificates kept until their identity's current certificate is in the store.
      type: int
    missing:
      description: Identity copies still missing.
      type: int
    problems:
      description: Problems over all stores.
      type: int
  sample: {stores: 3, changed: 1, with_problems: 0, present: 2, imported: 1, removed: 1, deferred: 0, foreign: 0,
           unclaimed: 0, missing: 0, problems: 0}
skipped_stores:
  description: The stores of O(stores) this system does not have, left out with O(skip_unavailable_stores).
  returned: always
  type: list
  elements: str
  sample: [keychain]
unsupported_platform:
  description:
    - The host's system when this module does not handle it (any system other than Linux and macOS, or C(Darwin)
      for a call that names V(chromium)); then nothing was read or changed, RV(stores) is empty, and the caller
      deploys through the C(certfleet.pki.deploy) role. Windows hosts are reconciled by the action plugin (see the
      notes).
  returned: when the host's stores are not handled here
  type: str
  sample: Windows
'''

import platform

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.certfleet.pki.plugins.module_utils.common.ansible_glue import require_cryptography, run
from ansible_collections.certfleet.pki.plugins.module_utils.common.errors import InputError
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.reconcile import (
    ALL_STORES, EVERYWHERE, STORES_BY_SYSTEM, reconcile_host,
)
from ansible_collections.certfleet.pki.plugins.module_utils.endpoints.reconcile_keychain import KeychainOptions

NSS_STORES = ('firefox', 'chromium')

IDENTITY_SPEC = {
    'identity': {'type': 'str', 'required': True},
    'fingerprint_sha256': {'type': 'str', 'required': True},
    'serial': {'type': 'str'},
    'certificate': {'type': 'str'},
    'pkcs12_path': {'type': 'path'},
    'pkcs12_password': {'type': 'str', 'no_log': True},
    # Read on the controller by the action plugin of the same name; the module only ever sees pkcs12_path.
    'pkcs12_src': {'type': 'path'},
    'pkcs12_password_src': {'type': 'path', 'no_log': False},
    'superseded_fingerprints_sha256': {'type': 'list', 'elements': 'str', 'default': []},
    'superseded_serials': {'type': 'list', 'elements': 'str', 'default': []},
    'apple_profile_dest': {'type': 'path'},
    'apple_profile_include_password': {'type': 'bool', 'default': False},
}


def main():
    module = AnsibleModule(
        argument_spec={
            'identities': {'type': 'list', 'elements': 'dict', 'required': True, 'options': IDENTITY_SPEC,
                           'required_by': {'pkcs12_path': 'pkcs12_password'}},
            'ca_certificate': {'type': 'str', 'required': True},
            'revoked_serials': {'type': 'list', 'elements': 'str', 'default': []},
            'users': {'type': 'list', 'elements': 'str'},
            'homes': {'type': 'list', 'elements': 'path'},
            'stores': {'type': 'list', 'elements': 'str', 'choices': list(ALL_STORES)},
            'ca_nickname': {'type': 'str'},
            'ca_trust': {'type': 'str', 'default': 'T,,'},
            'db_password': {'type': 'str', 'no_log': True},
            'create_db': {'type': 'bool', 'default': True},
            'firefox_certificate_selection': {'type': 'str', 'default': 'auto',
                                              'choices': ['auto', 'ask', 'unmanaged']},
            'fail_on_problems': {'type': 'bool', 'default': True},
            'keychain': {'type': 'str', 'default': 'login', 'no_log': False},  # a keychain's name or path
            'keychain_password': {'type': 'str', 'no_log': True},
            'keychain_trust_ca': {'type': 'bool', 'default': True},
            'skip_unavailable_stores': {'type': 'bool', 'default': False},
        },
        supports_check_mode=True,
    )
    require_cryptography(module)
    params = module.params
    system = platform.system()
    stores = params['stores'] or list(STORES_BY_SYSTEM.get(system, STORES_BY_SYSTEM['Linux']))
    skip = params['skip_unavailable_stores']
    unsupported = system not in STORES_BY_SYSTEM or (system == 'Darwin' and 'chromium' in stores and not skip)
    if skip and not unsupported:
        stores = [store for store in stores if store in STORES_BY_SYSTEM[system] + EVERYWHERE]
    certutil = pk12util = security = None
    if not unsupported and any(store in NSS_STORES for store in stores):
        certutil = module.get_bin_path('certutil', required=True)
        pk12util = module.get_bin_path('pk12util', required=True)
    if not unsupported and system == 'Darwin' and 'keychain' in stores:
        security = module.get_bin_path('security', required=True, opt_dirs=['/usr/bin'])

    def runner(args):
        return module.run_command(args, environ_update={'LC_ALL': 'C', 'LANG': 'C'}, expand_user_and_vars=False)

    def operation():
        if unsupported:
            # Windows stores, and Chromium on macOS (the keychain, through the deploy role's chromium handling),
            # are the deploy role's; the caller sends those identities there.
            outcome = {'changed': False, 'stores': [], 'unsupported_platform': system, 'skipped_stores': [],
                       'summary': dict.fromkeys(('stores', 'changed', 'with_problems', 'present', 'imported',
                                                 'removed', 'foreign', 'unclaimed', 'deferred', 'missing',
                                                 'problems'), 0)}
            if system == 'Darwin':
                outcome['warnings'] = ['chromium has no NSS database on macOS (Chromium reads the keychain): this call '
                                       'changed nothing; use stores [firefox, keychain] or the deploy role']
            return outcome
        unstaged = [str(i) for i, entry in enumerate(params['identities'])
                    if entry.get('pkcs12_src') or entry.get('pkcs12_password_src')]
        if unstaged:
            raise InputError('identities[%s]: pkcs12_src and pkcs12_password_src are controller files, read by the '
                             'action plugin certfleet.pki.endpoint_reconcile (call the module by that name)'
                             % ', '.join(unstaged), 'identities')
        result = reconcile_host(
            identities=params['identities'], ca_certificate=params['ca_certificate'],
            revoked_serials=params['revoked_serials'], users=params['users'], homes=params['homes'],
            stores=params['stores'], ca_nickname=params['ca_nickname'], ca_trust=params['ca_trust'],
            db_password=params['db_password'], create_db=params['create_db'],
            firefox_certificate_selection=params['firefox_certificate_selection'], check_mode=module.check_mode,
            skip_unavailable=skip, runner=runner, certutil=certutil or 'certutil', pk12util=pk12util or 'pk12util',
            system=system,
            keychain=KeychainOptions(keychain=params['keychain'], password=params['keychain_password'],
                                     trust_ca=params['keychain_trust_ca'], security=security or '/usr/bin/security'))
        if params['fail_on_problems'] and result['summary']['problems']:
            problems = ['%s %s: %s' % (s['store'], s['path'], p) for s in result['stores'] for p in s['problems']]
            if not module._diff:
                result.pop('diff', None)
            module.fail_json(msg='%d store(s) could not be reconciled: %s'
                             % (result['summary']['with_problems'], '; '.join(problems)), **result)
        return result

    run(module, operation)


if __name__ == '__main__':
    main()
