"""Fetching inputs by URL behind a guard against server-side request forgery.

Only http and https. Every address the host resolves to must be public unless the operator allowlisted the
host or the address (`Limits.allow_private_hosts`). Redirects are followed by hand, at most five, and each
target is checked again. The body is streamed under a byte cap, and `url_timeout_s` bounds each network
step and the whole download. Compressed bodies are asked not to be sent (`Accept-Encoding: identity`); a
server that sends gzip or deflate anyway is inflated here, under the same cap, never by httpx's uncapped
decoders, and any other encoding is refused.

DNS rebinding: the request is sent to the address that was checked (the URL's host stays in the Host header
and, for https, in SNI and certificate checks), so a second DNS answer cannot send the fetch elsewhere.
DNS resolution itself is not bounded by the timeout (getaddrinfo cannot be interrupted).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from pathlib import PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from fovea.core.io.limits import DEFAULT_LIMITS, Inflater, Limits
from fovea.errors import InputError, LimitExceeded

MAX_REDIRECTS = 5
# Content-Encoding -> zlib wbits. HTTP "deflate" is meant to be zlib-wrapped; some servers send raw deflate.
_INFLATE_WBITS = {"gzip": 16 + 15, "x-gzip": 16 + 15, "deflate": 15}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_REFUSED = (  # first match names the reason
    ("is_unspecified", "an unspecified address"),
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_reserved", "a reserved address"),
    ("is_private", "a private address"),
)


def check_url(url: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """Refuse a URL that is not http(s) or whose host resolves to a non-public address.

    Returns the first address the host resolves to (every one of them passed the check).
    """
    return _checked_addresses(url, limits)[0]


def fetch_url(url: str, *, limits: Limits = DEFAULT_LIMITS) -> tuple[bytes, str]:
    """Download `url` within the limits: the body, and a file name taken from the (final) URL's path."""
    deadline = time.monotonic() + limits.url_timeout_s
    with httpx.Client(timeout=httpx.Timeout(limits.url_timeout_s), follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            if time.monotonic() > deadline:
                raise _timed_out(url, limits)
            response = _send(client, url, _checked_addresses(url, limits), limits)
            try:
                if response.is_redirect:
                    url = urljoin(url, response.headers["location"])
                    continue
                if not response.is_success:
                    raise InputError(f"URL {_shown(url)} answered HTTP {response.status_code}")
                return _read_capped(response, url, limits, deadline), _file_name(url)
            except httpx.TimeoutException:
                raise _timed_out(url, limits) from None
            except httpx.HTTPError as exc:
                raise InputError(f"URL {_shown(url)} could not be fetched ({type(exc).__name__})") from None
            finally:
                response.close()
    raise InputError(f"URL {_shown(url)} redirected more than {MAX_REDIRECTS} times")


def _checked_addresses(url: str, limits: Limits) -> list[str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InputError(f"URL scheme {parts.scheme or '(none)'!r} is not allowed; use http or https")
    host = parts.hostname
    if not host:
        raise InputError(f"URL {_shown(url)} has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InputError(f"URL {_shown(url)} has an invalid port") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        raise InputError(f"URL host {host} cannot be resolved") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
    if not addresses:
        raise InputError(f"URL host {host} cannot be resolved")
    for address in addresses:
        reason = _why_refused(address)
        if reason and not _allowed(host, address, limits):
            shown = host if host == str(address) else f"{host} ({address})"
            raise InputError(f"URL host {shown} is {reason}; not allowed")
    return [str(address) for address in addresses]


def _send(client: httpx.Client, url: str, addresses: list[str], limits: Limits) -> httpx.Response:
    """GET `url` from the first checked address that accepts a connection (a host may resolve to several)."""
    parts = urlsplit(url)
    for address in addresses:
        headers = {"Host": _host_header(url), "Accept-Encoding": "identity"}  # nothing to inflate, please
        request = client.build_request("GET", _pinned(url, address), headers=headers)
        if parts.scheme == "https":  # TLS: SNI and the certificate check use the name, not the address
            request.extensions["sni_hostname"] = parts.hostname
        try:
            return client.send(request, stream=True)
        except httpx.ConnectError:
            continue
        except httpx.TimeoutException:
            raise _timed_out(url, limits) from None
        except httpx.HTTPError as exc:
            raise InputError(f"URL {_shown(url)} could not be fetched ({type(exc).__name__})") from None
    raise InputError(f"URL {_shown(url)} could not be fetched (ConnectError)")


def _timed_out(url: str, limits: Limits) -> InputError:
    return InputError(f"URL {_shown(url)} timed out after {limits.url_timeout_s:g} s")


def _why_refused(address: Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address in _METADATA:
        return "a cloud metadata address"
    for attribute, reason in _REFUSED:
        if getattr(address, attribute):
            return reason
    if not address.is_global:  # e.g. 100.64.0.0/10 (carrier-grade NAT), 192.0.0.0/24
        return "not a public address"
    return None


def _allowed(host: str, address: Address, limits: Limits) -> bool:
    for entry in limits.allow_private_hosts:
        if entry.lower().rstrip(".") == host.lower().rstrip("."):
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:  # a host name entry, not an address or network
            continue
    return False


def _read_capped(response: httpx.Response, url: str, limits: Limits, deadline: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise LimitExceeded(f"URL {_shown(url)} is {declared} bytes, over the limit of {limits.max_bytes}")
    inflater = _inflater(response, url, limits)
    body = bytearray()
    for chunk in response.iter_raw():  # raw bytes: httpx would inflate them without a cap
        body += inflater.feed(chunk) if inflater else chunk
        if len(body) > limits.max_bytes:
            raise LimitExceeded(f"URL {_shown(url)} is over the limit of {limits.max_bytes} bytes")
        if time.monotonic() > deadline:  # a server trickling bytes never trips the per-read timeout
            raise _timed_out(url, limits)
    if inflater:
        inflater.check_complete()
    if not body:
        raise InputError(f"URL {_shown(url)} returned an empty body")
    return bytes(body)


def _inflater(response: httpx.Response, url: str, limits: Limits) -> Inflater | None:
    """The capped decoder for a body sent with Content-Encoding despite `identity`; None for a plain body."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding not in _INFLATE_WBITS:
        raise InputError(f"URL {_shown(url)} answered with unsupported Content-Encoding {encoding!r}")
    cap = min(limits.max_bytes, limits.max_decoded_bytes)
    return Inflater(_INFLATE_WBITS[encoding], cap, f"URL {_shown(url)}")


def _pinned(url: str, address: str) -> str:
    """The URL with its host replaced by the checked address (user info and port kept)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=f"{userinfo}@{netloc}" if userinfo else netloc).geturl()


def _host_header(url: str) -> str:
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in str(parts.hostname) else str(parts.hostname)
    return f"{host}:{parts.port}" if parts.port else host


def _shown(url: str) -> str:
    """The URL for messages: without user:password, and cut short."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return url if len(url) <= 200 else url[:197] + "..."


def _file_name(url: str) -> str:
    return PurePosixPath(unquote(urlsplit(url).path)).name or "download"
