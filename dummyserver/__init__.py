"""Test support, outside the installed package (as urllib3 keeps its ``dummyserver/``): the
product's ``poster_rs.server.UploadServer`` with failures injected on purpose and a log of every
request it answered, for the tests and benchmarks of clients' retries.

``python -m dummyserver --port 0 --dir DIR --fail-rate 0.3`` runs it as a process.
"""

from __future__ import annotations

from .upload import FaultPlan, RecordingUploadServer

__all__ = ["FaultPlan", "RecordingUploadServer"]
