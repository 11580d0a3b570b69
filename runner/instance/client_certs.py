"""Client certificates (mutual TLS): who a connection's certificate says it is.

uvicorn does not pass the peer certificate to the app, so :func:`client_certificate_protocol`
(its h11 protocol, one more step at ``connection_made``) puts it in every request's scope as
the ASGI TLS extension: ``scope["extensions"]["tls"]["client_cert_chain"]`` (PEM). The TLS layer
has verified it against the instance's CA before any request is read. :func:`certificate_user`
names the user: the certificate's common name, when it is a client certificate (extended key
usage ``clientAuth``, as ``midprobe instance cert issue`` makes them; the server's own
certificate, signed by the same CA, names no user).
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Mapping
from typing import Any, Final, Literal

ClientCertMode = Literal["off", "optional", "required"]
CLIENT_CERT_MODES: Final[tuple[ClientCertMode, ...]] = ("off", "optional", "required")
VERIFY_MODES: Final[Mapping[ClientCertMode, ssl.VerifyMode]] = {
    "off": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


@functools.lru_cache(maxsize=1024)
def _user_of(pem: str) -> str | None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    try:
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except (ValueError, x509.ExtensionNotFound):
        return None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usage or len(names) != 1:
        return None
    name = names[0].value
    return name if isinstance(name, str) else None


def certificate_user(scope: Mapping[str, Any]) -> str | None:
    """The user the request's verified client certificate names, or ``None`` (no certificate)."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or ()
    return _user_of(chain[0]) if chain and isinstance(chain[0], str) else None


def client_certificate_protocol() -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, adding the connection's client certificate to each request's scope."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class ClientCertificateProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if der:
                app = self.app
                chain = [ssl.DER_cert_to_PEM_cert(der)]

                async def with_certificate(scope: Any, receive: Any, send: Any) -> None:
                    extensions = scope.setdefault("extensions", {})
                    extensions["tls"] = {**extensions.get("tls", {}), "client_cert_chain": chain}
                    await app(scope, receive, send)

                self.app = with_certificate

    return ClientCertificateProtocol


__all__ = [
    "CLIENT_CERT_MODES",
    "VERIFY_MODES",
    "ClientCertMode",
    "certificate_user",
    "client_certificate_protocol",
]
