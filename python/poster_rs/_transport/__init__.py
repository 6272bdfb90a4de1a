"""How a request body goes out on a connection, one small module per concern (as urllib3
separates ``util/request.py`` and ``util/wait.py``):

- ``wait``: readiness of a socket (poll, never select) and reads that do not wait;
- ``early``: noticing a server's final answer while the body is still going out, and handing
  the bytes already read back to ``http.client``;
- ``expect``: ``Expect: 100-continue``;
- ``chunks``: any body as a sequence of chunks, and chunked transfer framing;
- ``send``: the two send paths, native (poster_rs streams over plain TCP, sent from Rust with
  the GIL released) and chunk by chunk (TLS, other bodies).
"""
