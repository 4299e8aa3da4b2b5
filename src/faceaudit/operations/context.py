"""Who calls an operation, and what an operation runs against.

:class:`Caller` is the authenticated person (the server, never the client, says who it is). :class:`Context` is
what one running service holds: the gallery and its lock, the engine, the accountability records, the probe
sealer. The HTTP service's state satisfies it, and so can a script that opens the same parts itself.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from faceaudit.accountable import Principal
from faceaudit.gallery.values import Actor

if TYPE_CHECKING:
    from faceaudit.gallery import Gallery
    from faceaudit.operations.keys import KeyHasher
    from faceaudit.operations.records import ServiceStore
    from faceaudit.pipeline.engine import Engine


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller: the key's principal (canonical), the key's id and its roles."""

    name: Principal
    key_id: str
    roles: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", Principal(self.name))

    @property
    def actor(self) -> Actor:
        """Who every ledger entry of this call names: the principal, authenticated by this key."""
        return Actor.service(self.name, self.key_id)


class ProbeSealing(Protocol):
    def seal(self, data: bytes, search_id: str) -> bytes: ...

    def open(self, blob: bytes, search_id: str) -> bytes: ...


class Context(Protocol):
    """What the operations need of a running service (read-only attributes)."""

    @property
    def engine(self) -> Engine: ...

    @property
    def gallery(self) -> Gallery: ...

    @property
    def gallery_lock(self) -> threading.Lock: ...

    @property
    def store(self) -> ServiceStore: ...

    @property
    def hasher(self) -> KeyHasher: ...

    @property
    def probes(self) -> ProbeSealing: ...

    @property
    def audits(self) -> Any: ...
