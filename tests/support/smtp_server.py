"""A real SMTP server for tests/sinks_email.rs (aiosmtpd, from hack/test-deps.sh).

Usage: smtp_server.py CERT KEY USER PASSWORD OUTDIR [starttls|implicit]

Listens on a free port of 127.0.0.1 that it picks itself (retrying when another process takes the
port between the pick and the bind), and prints `READY <port>` once listening. With `starttls` (the default) it requires STARTTLS before anything
else; with `implicit` it speaks TLS from the first byte (like port 465). Certificate CERT, key
KEY. It offers AUTH PLAIN and LOGIN only over TLS and accepts exactly USER/PASSWORD. Each accepted
message is written to OUTDIR/<n>.eml as received, and OUTDIR/<n>.json holds what a mail client
would show: the envelope, the authenticated user, the decoded headers and each MIME part's type
and decoded text, so the Rust test needs no MIME parser. Stops on SIGTERM or when stdin closes.
"""

import email
import errno
import email.policy
import json
import os
import signal
import socket
import ssl
import sys
import logging
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    # aiosmtpd logs a warning about its own use of a deprecated attribute on every login; keep
    # its errors (a failed TLS handshake shows up there).
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    cert, key, user, password, outdir = sys.argv[1:6]
    mode = sys.argv[6] if len(sys.argv) > 6 else "starttls"
    os.makedirs(outdir, exist_ok=True)
    counter = {"n": 0}
    lock = threading.Lock()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    class Recorder:
        async def handle_DATA(self, server, session, envelope):
            raw = envelope.original_content or envelope.content
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            parts = []
            for part in msg.walk():
                if part.is_multipart():
                    parts.append({"content_type": part.get_content_type(), "text": None})
                else:
                    parts.append(
                        {"content_type": part.get_content_type(), "text": part.get_content()}
                    )
            headers = {}
            for name, value in msg.items():
                headers.setdefault(name.lower(), str(value))
            record = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "auth_user": (
                    session.auth_data.login.decode()
                    if isinstance(session.auth_data, LoginPassword)
                    else None
                ),
                # An implicit-TLS server cannot be spoken to in clear at all.
                "tls": session.ssl is not None or mode == "implicit",
                "headers": headers,
                "parts": parts,
            }
            with lock:
                counter["n"] += 1
                n = counter["n"]
            with open(os.path.join(outdir, f"{n}.eml"), "wb") as f:
                f.write(raw)
            tmp = os.path.join(outdir, f"{n}.json.tmp")
            with open(tmp, "w") as f:
                json.dump(record, f)
            os.rename(tmp, os.path.join(outdir, f"{n}.json"))
            return "250 OK queued as %d" % n

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    def controller(port):
        common = dict(
            hostname="127.0.0.1",
            port=port,
            authenticator=authenticator,
            auth_exclude_mechanism=["CRAM-MD5"],
        )
        if mode == "implicit":
            # The whole session is TLS; aiosmtpd's auth_require_tls only knows about STARTTLS.
            return Controller(Recorder(), ssl_context=tls, auth_require_tls=False, **common)
        return Controller(
            Recorder(), tls_context=tls, require_starttls=True, auth_require_tls=True, **common
        )

    for attempt in range(20):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = controller(port)
        try:
            server.start()
            break
        except OSError as err:
            if err.errno != errno.EADDRINUSE or attempt == 19:
                raise
    print(f"READY {port}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
