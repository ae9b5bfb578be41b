#!/usr/bin/env python3
"""An SMTP relay (aiosmtpd) with STARTTLS required, implicit TLS, or no TLS at all.

Usage: smtp-tls.py --tls {starttls,implicit,none} --maildir DIR --transcript FILE
                   [--ca-out FILE] [--user NAME --password SECRET] [--listen ADDRESS]

Makes a throwaway CA and a certificate for 127.0.0.1 and localhost, writes the CA certificate
(PEM) to --ca-out, and serves on a free port of ADDRESS (127.0.0.1 by default): with
`starttls`, every command but EHLO/HELO, NOOP and QUIT is refused until STARTTLS; with
`implicit`, the connection is TLS from the first byte; with `none`, there is no TLS. With
--user and --password, AUTH (PLAIN or LOGIN) with them is required before MAIL. Mail is stored
in the Maildir DIR. Every byte a client sends in plaintext (before STARTTLS, or all of it with
`none`) is appended to --transcript, so a test can see what crossed the network in clear.
Prints `ready PORT` once listening. Exits when its standard input reaches end of file, so the
process that started it cleans it up just by ending, or on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import logging
import os
import signal
import ssl
import threading
import warnings

import trustme
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

HOSTS = ("127.0.0.1", "localhost")

# AUTH without TLS (`none`) is what this relay is for; aiosmtpd's warnings about it, and about
# its own deprecations, are noise in the test output.
warnings.simplefilter("ignore")
logging.getLogger("mail.log").setLevel(logging.ERROR)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tls", required=True, choices=["starttls", "implicit", "none"])
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--transcript", required=True,
                        help="where to append what clients send in plaintext")
    parser.add_argument("--ca-out", help="where to write the CA certificate (TLS modes)")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    if args.tls != "none" and not args.ca_out:
        parser.error("--ca-out is needed with TLS")
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    return args


def server_context(ca_out):
    ca = trustme.CA()
    ca.cert_pem.write_to_path(ca_out)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*HOSTS).configure_cert(context)
    return context


class RecordingSMTP(SMTP):
    """Appends what the client sends in plaintext to the transcript, then serves as usual."""

    def __init__(self, *args, transcript, implicit, **kwargs):
        super().__init__(*args, **kwargs)
        self._transcript = transcript
        self._implicit = implicit

    def data_received(self, data):
        # After STARTTLS the TLS layer hands decrypted bytes here, with `_tls_protocol` set.
        if not self._implicit and self._tls_protocol is None:
            with open(self._transcript, "ab") as f:
                f.write(data)
        super().data_received(data)


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == user.encode()
              and auth_data.password == password.encode())
        return AuthResult(success=ok)
    return check


def watch_stdin(loop, stop):
    """Sets `stop` at end of standard input (a thread: stdin may be any kind of file)."""
    def run():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # already shutting down for a signal
            pass
    threading.Thread(target=run, daemon=True).start()


async def main():
    args = parse_args()
    loop = asyncio.get_running_loop()
    context = server_context(args.ca_out) if args.tls != "none" else None
    handler = Mailbox(args.maildir)
    open(args.transcript, "ab").close()
    auth = {}
    if args.user is not None:
        auth = {
            "authenticator": authenticator(args.user, args.password),
            "auth_required": True,
            # aiosmtpd cannot see implicit TLS (it is below the protocol); with `none`,
            # plaintext AUTH is what a test may want to observe.
            "auth_require_tls": args.tls == "starttls",
        }

    def factory():
        return RecordingSMTP(
            handler,
            hostname="localhost",
            tls_context=context if args.tls == "starttls" else None,
            require_starttls=args.tls == "starttls",
            transcript=args.transcript,
            implicit=args.tls == "implicit",
            loop=loop,
            **auth,
        )

    server = await loop.create_server(
        factory, args.listen, 0, ssl=context if args.tls == "implicit" else None)
    port = server.sockets[0].getsockname()[1]

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watch_stdin(loop, stop)

    print(f"ready {port}", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
