"""Outbound URL safety: the portal's workers fetch from and post to URLs that admins configure (billing sources,
Prometheus sources, alert webhooks and Alertmanagers). None of them may reach the portal's own network (the
database, Redis, the cloud metadata service ...) unless an operator allows it.

An outbound URL must be http or https, and every address its host resolves to must be public: loopback, private
(RFC 1918, fc00::/7), link-local (169.254.0.0/16 with the cloud metadata service, fe80::/10), unspecified,
multicast, reserved, shared (CGNAT, 100.64.0.0/10) and other special-purpose addresses are refused, in IPv4,
IPv6 and IPv4-mapped forms, unless ``settings.OUTBOUND_ALLOW`` (``OPSPORTAL_OUTBOUND_ALLOW``: host names and
CIDRs, comma-separated) covers the host or the address.

Two places check:

- ``url_problem``, when an admin saves a URL (forms and API), so a mistake shows at once;
- ``session()``, a ``requests`` session whose connections resolve the host themselves, check every address and
  connect to a checked one (no second lookup that DNS rebinding could answer differently), then check the peer
  address of the connected socket. Each redirect hop is a new connection and is checked the same way; schemes
  other than http and https are refused, redirects included. The session ignores proxy settings from the
  environment, since a proxy would make the connection on the portal's behalf, out of sight of the check.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError

ALLOWED_SCHEMES = ("http", "https")
SETTING = "OPSPORTAL_OUTBOUND_ALLOW"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


class OutboundRefused(requests.exceptions.ConnectionError):
    """An outbound connection the guard refused; the message says why and how to allow it."""


class _Refused(Exception):
    """Raised inside urllib3 (which would wrap an OSError and retry it); turned into OutboundRefused."""


# --- The allow-list -------------------------------------------------------------------------------------------


def _allow_list() -> tuple[set[str], list[str], list]:
    """(exact host names, ``*.domain`` suffixes, networks) from settings.OUTBOUND_ALLOW."""
    hosts, suffixes, networks = set(), [], []
    for entry in getattr(settings, "OUTBOUND_ALLOW", []) or []:
        entry = entry.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if entry.startswith("*."):
            suffixes.append(entry[1:])
        else:
            hosts.add(entry)
    return hosts, suffixes, networks


def _host_allowed(host: str) -> bool:
    hosts, suffixes, _ = _allow_list()
    host = host.lower().rstrip(".")
    return host in hosts or any(host.endswith(s) for s in suffixes)


def _address_allowed(ip: IPAddress) -> bool:
    _, _, networks = _allow_list()
    candidates = [ip]
    if ip.version == 6 and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)
    return any(c in n for c in candidates for n in networks if c.version == n.version)


# --- Address classes ------------------------------------------------------------------------------------------


def _kind(ip: IPAddress) -> str | None:
    """Why an address is not a public one, as in "a loopback address"; None for a public address."""
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and (inner := _kind(embedded)):
            form = "an IPv4-mapped" if ip.ipv4_mapped else "a 6to4" if ip.sixtofour else "a Teredo"
            return f"{form} form of {inner}"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address" + (" (the cloud metadata service)" if ip in _METADATA else "")
    if ip in _METADATA:
        return "the cloud metadata service's address"
    if ip.version == 4 and ip in _SHARED:
        return "a shared (CGNAT, 100.64.0.0/10) address"
    if ip.is_multicast:
        return "a multicast address"
    if any(ip in n for n in _PRIVATE if n.version == ip.version):
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "a special-purpose (not publicly routable) address"
    return None


def _literal(host: str) -> IPAddress | None:
    """The address a host written as an address stands for, in any form the resolver takes (2130706433,
    0177.0.0.1, 0x7f.1 ...); None for a host name."""
    host = host.strip("[]").split("%")[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _text(ip: IPAddress) -> str:
    return f"::ffff:{ip.ipv4_mapped}" if ip.version == 6 and ip.ipv4_mapped else str(ip)


def address_problem(host: str, ip: IPAddress) -> str | None:
    """Why connecting to ``ip`` (an address of ``host``) is refused, or None."""
    if _host_allowed(host) or _address_allowed(ip):
        return None
    kind = _kind(ip)
    if kind is None:
        return None
    literal = _literal(host)
    if literal is not None and literal == ip:
        written = host.strip("[]")
        same = written.lower() in (str(ip), _text(ip))
        what, name = (f"{_text(ip)} is {kind}" if same else f"{written} ({_text(ip)}) is {kind}"), _text(ip)
    else:
        what, name = f"{host} resolves to {_text(ip)}, {kind}", host
    return f"refused: {what}; add {name} to {SETTING} to allow it"


def resolve(host: str, port: int | None = None) -> list[IPAddress]:
    """Every address ``host`` resolves to (numeric forms such as 2130706433 included), in resolver order.

    Raises socket.gaierror when the name does not resolve."""
    seen: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host.strip("[]"), port or 0, proto=socket.IPPROTO_TCP):
        ip = ipaddress.ip_address(sockaddr[0].split("%")[0])
        if ip not in seen:
            seen.append(ip)
    return seen


def checked_addresses(host: str, port: int | None = None) -> list[IPAddress]:
    """Resolve ``host`` and check every address; raises _Refused if any one is refused (or there are none)."""
    addresses = resolve(host, port)
    if not addresses:
        raise _Refused(f"refused: {host} resolves to no address")
    for ip in addresses:
        if problem := address_problem(host, ip):
            raise _Refused(problem)
    return addresses


def scheme_problem(url: str) -> str | None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        what = f"{scheme}://" if scheme else "a URL without a scheme"
        return f"refused: {what} is not allowed (only http and https)"
    return None


def url_problem(url: str, *, unresolvable_ok: bool = True) -> str | None:
    """Why an outbound URL is refused, or None. For forms and the API, when an admin saves a URL.

    A host name that does not resolve (yet) passes when ``unresolvable_ok``: it is checked again at every
    connection, where an unresolvable name fails anyway."""
    if problem := scheme_problem(url):
        return problem
    try:
        host = urlsplit(url).hostname
    except ValueError as exc:
        return f"refused: {url!r} is not a valid URL ({exc})"
    if not host:
        return f"refused: {url!r} has no host name"
    try:
        checked_addresses(host)
    except _Refused as exc:
        return str(exc)
    except (socket.gaierror, UnicodeError) as exc:
        return None if unresolvable_ok else f"refused: {host} does not resolve ({exc})"
    return None


def check_url(url: str) -> None:
    """url_problem for the workers: raises OutboundRefused, an unresolvable host included."""
    if problem := url_problem(url, unresolvable_ok=False):
        raise OutboundRefused(problem)


# --- Guarded connections -------------------------------------------------------------------------------------


def _guarded_new_conn(conn: HTTPConnection, new_conn):
    """Resolve and check the host, then connect to a checked address, then check the peer of the socket."""
    host = conn._dns_host
    try:
        addresses = checked_addresses(host, conn.port)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    last_error: Exception | None = None
    for ip in addresses:
        conn._dns_host = str(ip)
        try:
            sock = new_conn()
        except Exception as exc:  # the next address may answer; urllib3's error for the last one is raised
            last_error = exc
            continue
        finally:
            conn._dns_host = host
        peer = ipaddress.ip_address(sock.getpeername()[0].split("%")[0])
        if peer != ip and (problem := address_problem(host, peer)):
            sock.close()
            raise _Refused(problem)
        return sock
    raise last_error


class GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self):
        return _guarded_new_conn(self, super()._new_conn)


class GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self):
        return _guarded_new_conn(self, super()._new_conn)


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """An HTTP(S) adapter whose every connection goes to a checked address."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool,
            "https": GuardedHTTPSConnectionPool,
        }

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        raise OutboundRefused(f"refused: outbound connections do not go through proxies (asked for {proxy})")

    def send(self, request, *args, **kwargs):
        if problem := scheme_problem(request.url):
            raise OutboundRefused(problem, request=request)
        try:
            return super().send(request, *args, **kwargs)
        except _Refused as exc:
            raise OutboundRefused(str(exc), request=request) from None


class GuardedSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # no proxies from the environment: the connection must be ours to check
        adapter = GuardedAdapter()
        self.adapters.clear()
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def get_adapter(self, url):
        if problem := scheme_problem(url):
            raise OutboundRefused(problem)
        return super().get_adapter(url)


def session() -> requests.Session:
    """A requests session for URLs admins configure: every connection (and redirect hop) is checked."""
    return GuardedSession()


def connect_timeout() -> float:
    return float(getattr(settings, "OUTBOUND_CONNECT_TIMEOUT", 10))
