"""Exit statuses of the ``poster-rs`` command, one table for all its subcommands: curl's numbers
where curl has one, so that scripts written for curl read them the same way. The README's
"Exit codes" table lists every one of them; ``tests/test_cli_exit_codes.py`` checks that the two
agree and runs a case per row."""

from __future__ import annotations

from typing import Final

OK: Final = 0
#: curl's "unsupported protocol": a URL scheme other than http/https, or a redirect that is
#: refused (a 307/308 from https to http would re-send the body in clear text).
PROTOCOL: Final = 1
#: ``demo`` only: the server received other bytes than were sent.
VERIFY_FAILED: Final = 1
#: Bad command line: unknown option, malformed ``-F``/``-H``, an invalid header value.
USAGE: Final = 2
#: The URL cannot be parsed (no host, a bad port, spaces or control characters).
URL_MALFORMED: Final = 3
#: The host name does not resolve.
RESOLVE: Final = 6
#: No connection: refused, unreachable.
CONNECT: Final = 7
#: The server's answer is not HTTP.
WEIRD_REPLY: Final = 8
#: The answer ended before its announced length.
PARTIAL: Final = 18
#: The server answered with a status of 400 or more.
HTTP_ERROR: Final = 22
#: A local file cannot be sent: missing, unreadable, a directory, a FIFO or other non-regular
#: file, or changed (size or identity) while it was being sent.
READ_ERROR: Final = 26
#: ``--timeout`` (no progress for that long) or ``--max-time`` (the whole attempt) passed.
TIMEOUT: Final = 28
#: The TLS handshake failed.
TLS_CONNECT: Final = 35
#: More redirects than urllib follows (a loop).
TOO_MANY_REDIRECTS: Final = 47
#: The connection broke while the request was being sent.
SEND_ERROR: Final = 55
#: The connection broke while waiting for or reading the answer.
RECV_ERROR: Final = 56
#: The server's certificate did not verify (see ``--cacert``, ``--insecure``).
PEER_CERTIFICATE: Final = 60
#: Interrupted (Ctrl-C), as a shell reports SIGINT.
INTERRUPTED: Final = 130
