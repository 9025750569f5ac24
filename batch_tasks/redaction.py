"""Keeping secrets out of what batch-tasks writes: logs, events and records.

The values of environment variables whose names look like keys, tokens or
passwords are replaced by `***` in everything an agent prints before it is
kept. The agent itself still gets its whole environment.
"""

from __future__ import annotations

import re
from typing import Mapping

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)
MIN_LENGTH = 6  # shorter values would mask ordinary words
MASK = b"***"


class Redactor:
    def __init__(self, environ: Mapping[str, str]):
        values = {value for name, value in environ.items() if SECRET_NAME.search(name) and len(value) >= MIN_LENGTH}
        # Longest first, so that a secret containing another is masked whole.
        self.secrets = sorted((value.encode() for value in values), key=len, reverse=True)

    def __call__(self, data: bytes) -> bytes:
        for secret in self.secrets:
            if secret in data:
                data = data.replace(secret, MASK)
        return data
