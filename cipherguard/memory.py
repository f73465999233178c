"""Giving freed heap back to the operating system.

Loading an ONNX model parses its protobuf into buffers that are freed once the session is built,
but glibc keeps freed memory in the middle of its heap mapped to the process: a web worker kept
about 4 MB of it resident for its whole life (measured with `make bench`: 162 MB RSS per worker
without, 158-159 MB with). ``malloc_trim`` hands those free pages back; it costs a few
milliseconds, so it runs after start-up and after a model swap, never per request."""

from __future__ import annotations

import ctypes
import ctypes.util


def return_free_heap() -> bool:
    """Release the free pages of the C heap; False where the C library has no ``malloc_trim``
    (musl, macOS): nothing to do there."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is None:
        return False
    trim(0)
    return True
