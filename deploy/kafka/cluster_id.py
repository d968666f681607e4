"""Print a new KRaft cluster id, as Kafka's own ``Uuid.randomUuid`` makes them.

16 random bytes, base64url without padding, and never one that starts with
'-': one random id in 64 would, and ``kafka-storage format -t -xyz...`` then
fails with "argument --cluster-id/-t: expected one argument" (Kafka's
``Uuid.randomUuid`` loops for the same reason). Standard library only, so
broker.sh can run it before any virtualenv exists.

    python3 cluster_id.py
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable


def new_cluster_id(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    while True:
        cid = base64.urlsafe_b64encode(random_bytes(16)).decode("ascii").rstrip("=")
        if not cid.startswith("-"):
            return cid


if __name__ == "__main__":
    print(new_cluster_id())
