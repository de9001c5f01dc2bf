"""What the replica planning (``replicas.py``) hands on: one ``Replica`` per vLLM replica and
the ``Plan`` of all of them, started by the launcher, printed by ``python -m launcher.replicas``
(``Replica.line``) and written into Compose by ``replica_compose.py``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Replica:
    """One vLLM replica: where it answers, the variables it sets over the shared configuration,
    and (CPU) the logical CPUs its process is confined to."""

    url: str
    env: dict[str, str]
    cpus: str | None = None

    def line(self) -> str:
        """``URL CPUS NAME=value ...`` (CPUS ``-`` for none), one line."""
        assignments = " ".join(f"{name}={value}" for name, value in self.env.items())
        return f"{self.url} {self.cpus or '-'} {assignments}".rstrip()


@dataclass(frozen=True)
class Plan:
    replicas: list[Replica]
    notes: list[str] = field(default_factory=list)

    @property
    def endpoints(self) -> str:
        """The microservice's ``LLM_MODEL_SERVER_ENDPOINT``: every replica, comma-separated."""
        return ",".join(replica.url for replica in self.replicas)
