"""testssl.sh against a STARTTLS listener with an RSA certificate of the
test CA: no finding of severity HIGH or CRITICAL.

testssl runs offline: the target is 127.0.0.1, no DNS lookups (--nodns
none), no CRL or OCSP fetches (no --phone-out), the test CA added for the
chain of trust.  The certificate is valid 90 days, so that a short-lived
test certificate is not itself a finding.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

import mtadtest
from mtadtest import HOSTNAME, SharedDaemonCase
import tlstest
from tlstest import listen, pki, ports

TESTSSL = shutil.which("testssl") or "/usr/bin/testssl"
RUN_LIMIT = 240          # seconds: a hung run fails instead of hanging


def findings(tree):
    """Every {id, severity, finding} dict of testssl's pretty JSON."""
    out = []
    if isinstance(tree, dict):
        if "severity" in tree and "id" in tree:
            out.append(tree)
        for v in tree.values():
            out.extend(findings(v))
    elif isinstance(tree, list):
        for v in tree:
            out.extend(findings(v))
    return out


class TestSSL(SharedDaemonCase):

    @classmethod
    def setUpClass(cls):
        if not os.access(TESTSSL, os.X_OK):
            raise __import__("unittest").SkipTest("testssl is not installed")
        mtadtest.suite_setup()
        k = pki()
        cls.ca_pem = k.ca_pem
        cls.tmp = tempfile.mkdtemp(prefix="testssl-", dir=mtadtest.base_dir())
        cert, key = cls.long_cert(k)
        [cls.tls_port] = ports(1)
        cls.EXTRA = ('pki "%s" cert "%s"\npki "%s" key "%s"\n' %
                     (HOSTNAME, cert, HOSTNAME, key) +
                     listen(cls.tls_port, "tls"))
        super().setUpClass()

    @classmethod
    def long_cert(cls, k):
        """An RSA 2048 certificate of the test CA, 90 days."""
        key = os.path.join(cls.tmp, "server.key")
        csr = os.path.join(cls.tmp, "server.csr")
        cert = os.path.join(cls.tmp, "server.pem")
        ext = os.path.join(cls.tmp, "server.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:%s,IP:127.0.0.1\n"
                    "extendedKeyUsage=serverAuth\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    # a real certificate has one; testssl does not fetch
                    # it (no --phone-out)
                    "crlDistributionPoints=URI:http://127.0.0.1/ca.crl\n"
                    % HOSTNAME)
        tlstest._openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout",
                         key, "-out", csr, "-subj", "/CN=%s" % HOSTNAME)
        tlstest._openssl("x509", "-req", "-in", csr, "-CA", k.ca_pem,
                         "-CAkey", k.ca.ca_key, "-CAcreateserial", "-out",
                         cert, "-days", "90", "-sha256", "-extfile", ext)
        os.chmod(key, 0o600)
        return cert, key

    def test_no_high_or_critical_finding(self):
        out_json = os.path.join(self.tmp, "testssl.json")
        argv = [TESTSSL, "--starttls", "smtp", "--quiet", "--color", "0",
                "--warnings", "off", "--nodns", "none",
                "--openssl-timeout", "5", "--connect-timeout", "5",
                "--add-ca", self.ca_pem,
                "--jsonfile-pretty", out_json,
                "127.0.0.1:%d" % self.tls_port]
        t0 = time.monotonic()
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=RUN_LIMIT,
                               cwd=self.tmp,
                               env=dict(os.environ, TERM="dumb"))
        except subprocess.TimeoutExpired:
            self.fail("testssl took more than %ds" % RUN_LIMIT)
        runtime = time.monotonic() - t0
        print("\ntestssl runtime: %.0fs" % runtime)
        text = r.stdout.decode("utf-8", "replace")
        self.assertTrue(os.path.exists(out_json),
                        "no JSON from testssl (exit %d):\n%s" %
                        (r.returncode, text[-3000:]))
        with open(out_json) as f:
            report = json.load(f)
        found = findings(report)
        ids = {f["id"]: f for f in found}
        # it did talk TLS to the server
        self.assertIn("TLS1_2", ids, text[-3000:])
        self.assertRegex(ids["TLS1_2"]["finding"], r"^offered")
        self.assertRegex(ids["TLS1_3"]["finding"], r"^offered")
        for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
            self.assertEqual(ids[old]["finding"], "not offered", old)
        notes = ["%s %s: %s" % (f["severity"], f["id"], f["finding"])
                 for f in found if f["severity"] in ("LOW", "MEDIUM")]
        print("testssl LOW/MEDIUM findings: %s" %
              ("\n  " + "\n  ".join(notes) if notes else "none"))
        bad = ["%s %s: %s" % (f["severity"], f["id"], f["finding"])
               for f in found
               if f["severity"] in ("HIGH", "CRITICAL", "FATAL")]
        self.assertEqual(bad, [], "testssl findings (%.0fs)" % runtime)
        self.assertLess(runtime, 180, "testssl took %.0fs" % runtime)
