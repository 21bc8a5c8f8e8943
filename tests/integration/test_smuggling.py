"""SMTP smuggling: a fake end of data inside DATA never ends the message.

Every variant of a fake end (bare LF or bare CR around the dot) is sent
inside one DATA, followed by a second "message" (with or without the
MAIL/RCPT/DATA commands that would start it), then the real CRLF.CRLF.
A strict listener refuses the whole thing with one 550 5.6.0; a
`normalize` listener accepts it as one message whose stored bytes have
CRLF line ends only.  Either way the smuggled commands are content: they
get no reply of their own and deliver nothing.
"""

import os

from mtadtest import (QUEUED_RX, SMTPClient, SharedDaemonCase, free_port,
                      make_message, new_msgid, reply_text, smtp_send)

SENDER = "sender@client.test"
OUTER_RCPT = "mtadtest1@mx.test"
INNER_RCPT = "mtadtest2@mx.test"

FAKE_ENDS = (b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n",
             b"\r\n.\r", b"\n.\r", b"\r.\n")

PROBE = b"VRFY probe\r\n"       # answered 252: tells its reply apart


def smuggled_data(fake, commands):
    """(DATA bytes up to and including the real end, outer id, inner id)."""
    outer, inner = new_msgid("outer"), new_msgid("inner")
    data = (b"From: <%s>\r\nTo: <%s>\r\nSubject: outer\r\n"
            b"Message-Id: %s\r\n\r\nfirst part" %
            (SENDER.encode(), OUTER_RCPT.encode(), outer.encode()))
    data += fake
    if commands:
        data += (b"MAIL FROM:<evil@client.test>\r\n"
                 b"RCPT TO:<%s>\r\nDATA\r\n" % INNER_RCPT.encode())
    data += (b"From: <evil@client.test>\r\nTo: <%s>\r\nSubject: smuggled\r\n"
             b"Message-Id: %s\r\n\r\nsmuggled body" %
             (INNER_RCPT.encode(), inner.encode()))
    data += b"\r\n.\r\n"
    return data, outer, inner


def normalized(data):
    """What a normalize listener stores for DATA bytes: the model of
    smtp_data.c.  The end is the first CRLF.CRLF; a dot goes only at a
    real line start (after CRLF); a bare CR or LF becomes CRLF."""
    buf = b"\r\n" + data
    end = buf.find(b"\r\n.\r\n")
    assert end >= 0, "no end of data"
    out = bytearray()
    for i in range(end):
        c = data[i:i + 1]
        if c == b"." and (i == 0 or (i >= 2 and data[i - 2:i] == b"\r\n")):
            continue
        if c == b"\r" and data[i + 1:i + 2] != b"\n":
            out += b"\r\n"
        elif c == b"\n" and (i == 0 or data[i - 1:i] != b"\r"):
            out += b"\r\n"
        else:
            out += c
    return bytes(out)


def bare_ends(data):
    """Offsets of CRs not followed by LF and LFs not preceded by CR."""
    out = []
    for i in range(len(data)):
        if data[i] == 13 and data[i + 1:i + 2] != b"\n":
            out.append(i)
        elif data[i] == 10 and (i == 0 or data[i - 1] != 13):
            out.append(i)
    return out


class Smuggling(SharedDaemonCase):
    """The default listener (strict) and a `normalize` one on one daemon."""

    @classmethod
    def setUpClass(cls):
        cls.norm_port = free_port()
        cls.EXTRA = "listen on 127.0.0.1 port %d normalize\n" % cls.norm_port
        super().setUpClass()

    def send_smuggled(self, port, data, pipelined):
        """One session: a transaction whose DATA is `data`, then the probe.
        Returns the reply to the end of data, after checking that the very
        next reply is the probe's (no extra replies in between)."""
        c = SMTPClient(port)
        self.addCleanup(c.close)
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        tx = b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (
            SENDER.encode(), OUTER_RCPT.encode())
        if pipelined:
            c.send(tx + data + PROBE)
            self.assertReply(c.read_reply(), 250)
            self.assertReply(c.read_reply(), 250)
            self.assertReply(c.read_reply(), 354)
        else:
            for line in tx.split(b"\r\n")[:-1]:
                c.send(line + b"\r\n")
                self.assertEqual(c.read_reply()[0],
                                 354 if line == b"DATA" else 250)
            c.send(data)
        r = c.read_reply()
        if not pipelined:
            c.send(PROBE)
        probe = c.read_reply()
        self.assertReply(probe, 252, msg="the reply after the end of data "
                         "is not the probe's: %s (end of data: %s)" %
                         (reply_text(probe), reply_text(r)))
        self.assertReply(c.cmd("QUIT"), 221)
        return r

    def cases(self):
        for fake in FAKE_ENDS:
            for commands in (False, True):
                for pipelined in (False, True):
                    yield fake, commands, pipelined

    def assert_not_delivered(self, msgids):
        """Once a marker sent after them is delivered and the queue is
        empty, none of msgids is in a mailbox."""
        marker = new_msgid("marker")
        smtp_send(self.mtad.port, SENDER, [INNER_RCPT],
                  make_message("marker", marker, to=INNER_RCPT))
        self.mtad.wait_message("mtadtest2", marker)
        self.mtad.wait_queue_empty()
        for user in ("mtadtest1", "mtadtest2"):
            got = [m.message_id for m in self.mtad.mbox(user)
                   if m.message_id in msgids]
            self.assertEqual(got, [], "delivered to %s: %s" % (user, got))

    def test_strict_refuses_whole_message(self):
        ids = set()
        for fake, commands, pipelined in self.cases():
            with self.subTest(fake=fake, commands=commands,
                              pipelined=pipelined):
                data, outer, inner = smuggled_data(fake, commands)
                ids.update((outer, inner))
                r = self.send_smuggled(self.mtad.port, data, pipelined)
                self.assertReply(r, 550, "5.6.0")
        self.assert_not_delivered(ids)

    def test_normalize_accepts_one_message(self):
        self.assertEqual(self.mtad.ctl("pause", "delivery").returncode, 0)
        self.addCleanup(self.mtad.ctl, "resume", "delivery")
        sent = []
        for fake, commands, pipelined in self.cases():
            with self.subTest(fake=fake, commands=commands,
                              pipelined=pipelined):
                data, outer, inner = smuggled_data(fake, commands)
                r = self.send_smuggled(self.norm_port, data, pipelined)
                self.assertReply(r, 250, "2.0.0")
                m = QUEUED_RX.match(r[1][-1])
                self.assertTrue(m, "no queue id: " + reply_text(r))
                path = os.path.join(self.mtad.queue, "queue", m.group(1))
                with open(path, "rb") as f:
                    stored = f.read()
                self.assertEqual(bare_ends(stored), [],
                                 "bare CR/LF stored: %r" % stored)
                want = normalized(data)
                self.assertTrue(stored.endswith(want),
                                "stored %r, want it to end with %r" %
                                (stored, want))
                if commands:
                    self.assertIn(b"\r\nMAIL FROM:<evil@client.test>\r\n"
                                  b"RCPT TO:<%s>\r\nDATA\r\n" %
                                  INNER_RCPT.encode(), stored)
                self.assertIn(b"Message-Id: " + inner.encode() + b"\r\n",
                              stored)
                sent.append((outer, inner))
        self.assertEqual(self.mtad.ctl("resume", "delivery").returncode, 0)
        outers = {o for o, _ in sent}
        inners = {i for _, i in sent}
        self.mtad.wait_mbox(
            "mtadtest1", lambda ms: outers <= {m.message_id for m in ms},
            what="every accepted message in mtadtest1's mbox")
        self.mtad.wait_queue_empty()
        msgs = self.mtad.mbox("mtadtest1")
        for outer, inner in sent:
            mine = [m for m in msgs if m.message_id == outer]
            self.assertEqual(len(mine), 1, "%s delivered %d times" %
                             (outer, len(mine)))
            self.assertIn(b"Message-Id: " + inner.encode(), mine[0].raw)
            self.assertIn(b"smuggled body", mine[0].raw)
            self.assertNotIn(b"\r", mine[0].raw)
        self.assert_not_delivered(inners)
