# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""X.509 helpers shared by the CA and every endpoint adapter (private module_utils).

identity.py fingerprints and serial formats, issuer.py issued-by and why not, pem.py PEM input (text or path),
pkcs12.py PKCS#12 build, open and describe (der.py reads the DER for that), names.py subjects and SANs.
Endpoint adapters import these, never each other.
"""
