"""Signed model artifacts: bytes, their sha256, and an HMAC that binds them to a model version.

Artifacts are usually pickled model objects (river pipelines), and unpickling
bytes is running code: whoever can write a blob into Redis could otherwise run
anything in the process that loads it. So an artifact is only unpickled after
its HMAC-SHA256 signature has been checked against the registry's secret. The
signature covers the model name, the version number, the format and the sha256
of the bytes, so a validly signed blob cannot be swapped in for another version
or another model either.

This module is pure: it knows nothing of Redis (see :mod:`.registry`).
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
from dataclasses import dataclass
from typing import Literal

from online_models.registry.exceptions import ArtifactRefusedError, MissingSecretError

__all__ = ["MIN_SECRET_BYTES", "ArtifactFormat", "ArtifactSigner", "SignedArtifact", "serialize"]

#: Shortest secret accepted: an HMAC key much shorter than this can be guessed.
MIN_SECRET_BYTES = 16

ArtifactFormat = Literal["pickle", "bytes"]

_DOMAIN = b"driftloop-artifact-v1"


def serialize(artifact: object) -> tuple[bytes, ArtifactFormat]:
    """The bytes to store for ``artifact`` and their format: ``bytes`` as they are, else a pickle.

    Examples
    --------
    >>> serialize(b"raw model file")
    (b'raw model file', 'bytes')
    >>> payload, fmt = serialize({"weights": [0.5, 1.5]})
    >>> fmt, pickle.loads(payload)
    ('pickle', {'weights': [0.5, 1.5]})
    """
    if isinstance(artifact, bytes | bytearray | memoryview):
        return bytes(artifact), "bytes"
    return pickle.dumps(artifact, protocol=5), "pickle"


@dataclass(frozen=True)
class SignedArtifact:
    """An artifact ready to store: its bytes, how to read them back, checksum and signature.

    Examples
    --------
    >>> signer = ArtifactSigner(b"an example secret, 32 bytes long")
    >>> sealed = signer.seal({"weights": [0.5, 1.5]}, model="voice-intent", version=1)
    >>> sealed.format, sealed.sha256 == hashlib.sha256(sealed.payload).hexdigest()
    ('pickle', True)
    """

    payload: bytes
    format: ArtifactFormat
    sha256: str
    signature: str


class ArtifactSigner:
    """Seal artifacts with an HMAC-SHA256 signature, and open only those that check out.

    Parameters
    ----------
    secret
        The registry secret (``DRIFTLOOP_REGISTRY_SECRET``), at least
        :data:`MIN_SECRET_BYTES` bytes; a ``str`` is encoded as UTF-8.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> weights = [round(rng.gauss(0, 1), 3) for _ in range(3)]
    >>> signer = ArtifactSigner(b"an example secret, 32 bytes long")
    >>> sealed = signer.seal(weights, model="voice-intent", version=4)
    >>> signer.open(sealed, model="voice-intent", version=4) == weights
    True
    >>> tampered = SignedArtifact(
    ...     sealed.payload[:-1] + b"\\x00", sealed.format, sealed.sha256, sealed.signature
    ... )
    >>> signer.open(tampered, model="voice-intent", version=4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    online_models.registry.exceptions.ArtifactRefusedError: ... its bytes changed since ...
    """

    __slots__ = ("_key",)

    def __init__(self, secret: bytes | str) -> None:
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(key) < MIN_SECRET_BYTES:
            raise MissingSecretError(
                f"the registry secret is {len(key)} bytes long, at least {MIN_SECRET_BYTES} "
                "are needed: set DRIFTLOOP_REGISTRY_SECRET to a random string, e.g. the output "
                "of `python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        self._key = key

    def signature(self, *, model: str, version: int, artifact_format: str, sha256: str) -> str:
        """The hex HMAC-SHA256 of one artifact's identity: model, version, format and sha256."""
        message = b"\0".join(
            [_DOMAIN, model.encode(), str(int(version)).encode(), artifact_format.encode(),
             sha256.encode()]
        )  # fmt: skip
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def seal(self, artifact: object, *, model: str, version: int) -> SignedArtifact:
        """Serialise ``artifact`` and sign it: ``bytes`` are kept as they are, the rest pickled."""
        payload, artifact_format = serialize(artifact)
        return self.seal_payload(payload, artifact_format, model=model, version=version)

    def seal_payload(
        self, payload: bytes, artifact_format: ArtifactFormat, *, model: str, version: int
    ) -> SignedArtifact:
        """Sign bytes already serialised by :func:`serialize`."""
        sha256 = hashlib.sha256(payload).hexdigest()
        signature = self.signature(
            model=model, version=version, artifact_format=artifact_format, sha256=sha256
        )
        return SignedArtifact(payload, artifact_format, sha256, signature)

    def verify(self, sealed: SignedArtifact, *, model: str, version: int) -> None:
        """Raise :class:`ArtifactRefusedError` unless ``sealed`` is exactly what was signed.

        Checks, in this order: a signature is there, the bytes still have the
        recorded sha256, and the signature matches this secret, model and version.
        """
        where = f"artifact of {model} version {version} was refused"
        if not sealed.signature:
            raise ArtifactRefusedError(
                f"{where}: it has no signature, and unsigned bytes are never unpickled; "
                "publish it again through a registry that has a secret"
            )
        actual = hashlib.sha256(sealed.payload).hexdigest()
        if not hmac.compare_digest(actual, sealed.sha256):
            raise ArtifactRefusedError(
                f"{where}: its bytes changed since it was published (sha256 {actual[:12]} != "
                f"recorded {sealed.sha256[:12]}), so it was tampered with or corrupted; "
                "publish the model again"
            )
        expected = self.signature(
            model=model, version=version, artifact_format=sealed.format, sha256=actual
        )
        if not hmac.compare_digest(expected, sealed.signature):
            raise ArtifactRefusedError(
                f"{where}: its signature does not match — it was signed with another secret, "
                "or its record was altered or copied from another version; check that "
                "DRIFTLOOP_REGISTRY_SECRET is the one it was published with"
            )

    def open(self, sealed: SignedArtifact, *, model: str, version: int) -> object:
        """Verify ``sealed`` (see :meth:`verify`), then and only then deserialise it."""
        self.verify(sealed, model=model, version=version)
        if sealed.format == "bytes":
            return sealed.payload
        if sealed.format == "pickle":
            return pickle.loads(sealed.payload)
        raise ArtifactRefusedError(
            f"artifact of {model} version {version} has format {sealed.format!r}; "
            "known formats: bytes, pickle"
        )
