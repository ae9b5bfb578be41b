#!/usr/bin/env python3
"""A TLS-terminating TCP forwarder standing in for the load balancer in front of Gatehouse.

Usage: tls-edge.py --listen ADDRESS --upstream HOST:PORT --host NAME [--host NAME ...]
                   --ca-out FILE [--port 443]

Makes a throwaway CA and a server certificate for every --host, writes the CA certificate
(PEM) to --ca-out, accepts TLS on ADDRESS:443 (or --port) and relays the decrypted bytes to the
upstream unchanged, so the Host header reaches Gatehouse as the client sent it. Prints
`ready` once listening. Exits when its standard input reaches end of file, so the process
that started it cleans it up just by ending, or on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import os
import signal
import ssl
import threading

import trustme

CHUNK = 64 * 1024
# Bounds, so a stuck or misbehaving peer cannot keep the edge busy forever.
MAX_CONNECTIONS = 256
CONNECT_TIMEOUT = 10
HANDSHAKE_TIMEOUT = 10
IDLE_TIMEOUT = 60


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="address to accept TLS on")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the plain-HTTP server")
    parser.add_argument("--host", action="append", required=True, dest="hosts",
                        help="a host name the certificate covers (repeatable)")
    parser.add_argument("--ca-out", required=True, help="where to write the CA certificate")
    args = parser.parse_args()
    host, sep, port = args.upstream.rpartition(":")
    if not sep or not port.isdigit():
        parser.error("--upstream must be HOST:PORT")
    args.upstream = (host.strip("[]"), int(port))
    return args


def server_context(hosts, ca_out):
    ca = trustme.CA()
    ca.cert_pem.write_to_path(ca_out)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*hosts).configure_cert(context)
    return context


async def pipe(reader, writer, both):
    """Copies one direction; a failure or a closed TLS side tears the whole pair down."""
    try:
        while data := await asyncio.wait_for(reader.read(CHUNK), IDLE_TIMEOUT):
            writer.write(data)
            await writer.drain()
        # Pass a half-close on where the transport can (plain TCP towards the upstream):
        # the answer may still be on its way back.
        if writer.can_write_eof():
            writer.write_eof()
            return
    except (OSError, ssl.SSLError, asyncio.TimeoutError, RuntimeError):
        pass
    for w in both:
        w.close()


class Edge:
    def __init__(self, upstream):
        self.upstream = upstream
        self.tasks = set()

    async def handle(self, client_reader, client_writer):
        task = asyncio.current_task()
        if len(self.tasks) >= MAX_CONNECTIONS:
            client_writer.close()
            return
        self.tasks.add(task)
        writers = [client_writer]
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), CONNECT_TIMEOUT)
            writers.append(up_writer)
            await asyncio.gather(
                pipe(client_reader, up_writer, writers),
                pipe(up_reader, client_writer, writers),
            )
        # Cancelled only at shutdown; ending quietly keeps Python 3.11's stream callback from
        # logging the cancellation as an error.
        except (OSError, ssl.SSLError, asyncio.TimeoutError, asyncio.CancelledError):
            pass
        finally:
            for w in writers:
                w.close()
            self.tasks.discard(task)


def watch_stdin(loop, stop):
    """Sets `stop` at end of standard input. A thread, since stdin may be any kind of file;
    it reads the raw descriptor so it holds no lock that would stall interpreter exit."""
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
    context = server_context(args.hosts, args.ca_out)
    edge = Edge(args.upstream)
    server = await asyncio.start_server(
        edge.handle, args.listen, args.port, ssl=context,
        ssl_handshake_timeout=HANDSHAKE_TIMEOUT, reuse_address=True)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watch_stdin(loop, stop)

    print("ready", flush=True)
    await stop.wait()

    server.close()
    for task in list(edge.tasks):
        task.cancel()
    await asyncio.gather(*edge.tasks, return_exceptions=True)
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
