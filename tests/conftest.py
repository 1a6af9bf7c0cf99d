"""Imports the whole suite needs before any in-process pytester run.

httpx imports httpcore lazily, on its first request. pytester's in-process runs drop the modules first
imported inside them; imported again later, httpcore makes new exception classes that httpx no longer
maps, so a refused connection escaped as a bare `httpcore.ConnectError` in whichever test came next.
"""

import httpcore  # noqa: F401
