# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Notices: the service's e-mails to the registration officer and, where configured, the person (private
module_utils).

``templates`` holds the editable texts, ``compose`` turns a kind and its facts into a message (refusing any that
carries a secret, optionally S/MIME-signed), ``smtp`` sends it, and ``events`` gathers the facts from the CA store,
records every notice sent in the audit log and sends the expiry warnings. The portal calls
:func:`events.notify_event`. Only the standard library and cryptography are imported.
"""
