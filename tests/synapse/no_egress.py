"""Runs Synapse's homeserver with a guard that refuses every network operation not aimed at loopback, for as
long as the process that started it (the test) lives.

Usage: python no_egress.py EGRESS_LOG -- <arguments of synapse.app.homeserver>

A Python audit hook (PEP 578) sees every socket connect, sendto/sendmsg and name lookup made through Python's
socket module (which is how Twisted, and so Synapse, reaches the network). Anything not aimed at a loopback
address or a Unix socket is appended to EGRESS_LOG and refused with PermissionError, so it never leaves the
machine; tests/synapse.rs fails when EGRESS_LOG is not empty. The homeserver config already turns every
outbound feature off: this is the proof that it did.

The test kills Synapse when it ends, even when it panics; should the test process itself be killed, Synapse
notices that its parent is gone within a second and exits too, so no homeserver outlives its test.
"""

import ipaddress
import os
import runpy
import socket
import sys
import threading
import time

if len(sys.argv) < 3 or sys.argv[2] != "--":
    sys.exit("usage: no_egress.py EGRESS_LOG -- <homeserver arguments>")
_LOG = sys.argv[1]
sys.argv = ["synapse.app.homeserver", *sys.argv[3:]]


def _is_local_host(host):
    if host is None or host in ("", b""):
        return True  # a passive lookup (bind), or the socket's own default
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a DNS name: looking it up would be traffic


def _is_local_address(sock, address):
    if getattr(sock, "family", None) == getattr(socket, "AF_UNIX", object()):
        return True
    if isinstance(address, (str, bytes)):
        return True  # a Unix socket path
    if isinstance(address, tuple) and address:
        return _is_local_host(address[0])
    return False


def _refuse_quietly(event, detail):
    raise PermissionError(f"no_egress.py: refused {event} of {detail!r} (tests allow loopback only)")


def _refuse(event, detail):
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(f"{event} {detail!r}\n")
    raise PermissionError(f"no_egress.py: refused {event} to {detail!r} (tests allow loopback only)")


def _hook(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        sock, address = args[0], args[1]
        if address is not None and not _is_local_address(sock, address):
            _refuse(event, address)
    elif event == "socket.getaddrinfo":
        if not _is_local_host(args[0]):
            _refuse(event, args[0])
    elif event in ("socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"):
        if args[0] == _OWN_HOSTNAME:
            # twisted.mail.smtp (which Synapse imports) calls socket.getfqdn() at import time. That is no
            # traffic where /etc/hosts names this machine, but could be a DNS query elsewhere; refused either
            # way, and getfqdn() then falls back to the bare hostname, as it does on any lookup error.
            _refuse_quietly(event, args[0])
        elif not _is_local_host(args[0]):
            _refuse(event, args[0])
    elif event == "urllib.Request":
        _refuse(event, args[0])


def _exit_with_parent(parent):
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
_OWN_HOSTNAME = socket.gethostname()
sys.addaudithook(_hook)
runpy.run_module("synapse.app.homeserver", run_name="__main__", alter_sys=True)
