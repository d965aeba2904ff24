"""A small, polite HTTP client: rate-limited GETs, no proxies, no redirects, no retries."""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

from pacsguard.scan.ratelimit import WHOLE, RateLimits
from pacsguard.scan.tls import client_context

USER_AGENT = "pacsguard-scan (defensive PACS exposure audit)"
REALM = re.compile(r'realm\s*=\s*"([^"]*)"', re.IGNORECASE)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        import json

        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def realm(self) -> str | None:
        match = REALM.search(self.headers.get("www-authenticate", ""))
        return match.group(1) if match else None


class Web:
    """GETs against one host:port; every request takes a rate-limit token first."""

    MAX_BODY = 4 << 20

    def __init__(
        self,
        host: str,
        port: int,
        scheme: str,
        timeout: float,
        limits: RateLimits,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.host = host
        self.limits = limits
        self.seconds = WHOLE * timeout  # a whole request's time (httpx's is per read)
        netloc = f"[{host}]" if ":" in host else host
        self.client = httpx.Client(
            transport=transport,
            base_url=f"{scheme}://{netloc}:{port}",
            timeout=timeout,
            verify=client_context() if scheme == "https" else True,
            trust_env=False,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
        self.auth: tuple[str, str] | None = None

    def get(
        self, path: str, params: dict[str, Any] | None = None, accept: str | None = None
    ) -> Reply | None:
        self.limits.acquire(self.host)
        headers = {"Accept": accept} if accept else {}
        deadline = time.monotonic() + self.seconds
        try:
            with self.client.stream(
                "GET", path, params=params, headers=headers, auth=self.auth
            ) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > self.MAX_BODY:
                        break
                    if time.monotonic() > deadline:  # a body trickling in: no answer
                        return None
                return Reply(response.status_code, response.headers, body)
        except (httpx.HTTPError, OSError, ValueError):
            return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    def __enter__(self) -> Web:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
