"""Sign a webhook call the way the payment provider does: HMAC-SHA256 of the path, in hex.

Pure Python with no Django import: the shop checks signatures with it, and the load generator
(``perflab.locustfile``, in a process of its own) signs its calls with it.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["HEADER", "sign", "verify"]

#: The request header that carries the signature.
HEADER = "X-Shop-Signature"


def sign(secret: str, message: str) -> str:
    """Return the signature of ``message`` (a request path) with ``secret``."""
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def verify(secret: str, message: str, signature: str) -> bool:
    """Return True when ``signature`` is ``message``'s with ``secret`` (in constant time)."""
    return bool(secret) and hmac.compare_digest(sign(secret, message), signature)
