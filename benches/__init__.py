"""The poster_rs benchmark suite: ``python -m benches`` (see benches/README.md).

poster_rs against its peers (requests-toolbelt, httpx, aiohttp, urllib3, requests, curl) and
against the physical limits of the machine (page-cache read, memcpy, loopback TCP), measured in
one run with every case interleaved and in its own process.
"""
