"""Fetching inputs by URL behind a guard against server-side request forgery.

Only http(s); every address the host resolves to must be public unless the operator allowlisted it;
redirects are followed by hand so each hop is checked again; size and time are capped. The request
goes to the address that was checked (the Host header keeps the name), so a DNS answer that changes
between check and connect cannot point the fetch somewhere else.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from fovea.core.io.limits import DEFAULT_LIMITS, Limits
from fovea.errors import InputError, LimitExceeded

MAX_REDIRECTS = 5
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


def _allowed(host: str, address: ipaddress._BaseAddress, limits: Limits) -> bool:
    for entry in limits.allow_private_hosts:
        if entry == host:
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _why_refused(address: ipaddress._BaseAddress) -> str | None:
    if address in _METADATA:
        return "a cloud metadata address"
    for attribute, words in (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_private", "a private address"),
        ("is_multicast", "a multicast address"),
        ("is_reserved", "a reserved address"),
        ("is_unspecified", "an unspecified address"),
    ):
        if getattr(address, attribute):
            return words
    return None


def check_url(url: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """Refuse URLs that are not http(s) or point at non-public addresses; return the address to connect to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InputError(f"URL scheme {parts.scheme or '(none)'!r} is not allowed; use http or https")
    host = parts.hostname
    if not host:
        raise InputError(f"URL {url!r} has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        raise InputError(f"URL host {host} cannot be resolved") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        reason = _why_refused(address)
        if reason and not _allowed(host, address, limits):
            raise InputError(f"URL host {host} is {reason} ({address}); not allowed")
    return str(addresses[0])


def fetch_url(url: str, *, limits: Limits = DEFAULT_LIMITS) -> tuple[bytes, str]:
    """Download `url` within the limits; returns the body and a file name taken from the URL path."""
    timeout = httpx.Timeout(limits.url_timeout_s)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            address = check_url(url, limits)
            try:
                with client.stream(
                    "GET", _pinned(url, address), headers={"Host": _host_header(url)}, extensions=_sni(url)
                ) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers.get("location", ""))
                        continue
                    if response.status_code != 200:
                        raise InputError(f"URL {url} answered HTTP {response.status_code}")
                    return _read_capped(response, url, limits), _file_name(url)
            except httpx.TimeoutException:
                raise InputError(f"URL {url} timed out after {limits.url_timeout_s:g} s") from None
            except httpx.HTTPError as exc:
                raise InputError(f"URL {url} could not be fetched ({type(exc).__name__})") from None
    raise InputError(f"URL {url} redirected more than {MAX_REDIRECTS} times")


def _read_capped(response: httpx.Response, url: str, limits: Limits) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise LimitExceeded(f"URL {url} is {declared} bytes, over the limit of {limits.max_bytes}")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limits.max_bytes:
            raise LimitExceeded(f"URL {url} is over the limit of {limits.max_bytes} bytes")
    if not body:
        raise InputError(f"URL {url} returned an empty body")
    return bytes(body)


def _pinned(url: str, address: str) -> str:
    """The URL with its host replaced by the checked address."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()


def _host_header(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def _sni(url: str) -> dict[str, str]:
    """TLS must still verify the certificate against the real host name, not the pinned address."""
    parts = urlsplit(url)
    return {"sni_hostname": str(parts.hostname)} if parts.scheme == "https" else {}


def _file_name(url: str) -> str:
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    return name or "download"
