"""Which replicas exist: the endpoint list, with every host name that resolves to several
addresses (a Kubernetes headless Service) expanded to one replica per address.

A name with one address stays as written, so a single endpoint behaves as it always did (the
same URL, TLS names intact); ``localhost`` is one replica, not one per address family.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit


class Resolver(Protocol):
    async def __call__(self, host: str, port: int) -> list[str]:
        """The addresses of ``host``; raises OSError when it cannot be resolved."""
        ...


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's resolver (getaddrinfo), IPv4 answers preferred over IPv6 ones."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    v4 = [str(info[4][0]) for info in infos if info[0] == socket.AF_INET]
    v6 = [str(info[4][0]) for info in infos if info[0] == socket.AF_INET6]
    return list(dict.fromkeys(v4 or v6))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _with_host(url: str, address: str) -> str:
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


class Discovery:
    """The replica URLs behind the endpoint list, looked up again on each ``replicas()`` call.

    A name that cannot be resolved keeps its last answer (a DNS hiccup must not empty the
    rotation); before any answer it stands for itself, and the probes say whether it answers."""

    def __init__(self, endpoints: list[str], resolver: Resolver = system_resolver) -> None:
        self._endpoints = endpoints
        self._resolver = resolver
        self._last: dict[str, list[str]] = {}

    async def replicas(self) -> list[str]:
        expanded = await asyncio.gather(*(self._expand(url) for url in self._endpoints))
        return list(dict.fromkeys(url for urls in expanded for url in urls))

    async def _expand(self, url: str) -> list[str]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if _is_address(host):
            return [url]
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = await self._resolver(host, port)
        except OSError:
            return self._last.get(url, [url])
        urls = [url] if len(addresses) <= 1 else [_with_host(url, a) for a in sorted(addresses)]
        self._last[url] = urls
        return urls
