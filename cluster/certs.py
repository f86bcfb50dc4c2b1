"""A private CA and the scheduler, worker and client certificates of a small site.

Why a private CA: Dask's TLS is mutual and checks every peer's chain against one
CA file; hostnames are not checked (workers come and go with any name), so the
CA *is* the access control: whoever holds a certificate it signed can join. It
is kept apart (``ca-key.pem``, mode 0600) and only needed again to issue more.

ECDSA P-256 keys (small, fast handshakes, accepted by every OpenSSL the workers
may have); every leaf carries both serverAuth and clientAuth, because a
scheduler also dials workers and a worker also serves its peers.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
from pathlib import Path

from triage.rules.errors import InputError

log = logging.getLogger(__name__)

ROLES = ("scheduler", "worker", "client")


def _write(path: Path, data: bytes, private: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _names(hosts: list[str]) -> list:
    from cryptography import x509

    out = []
    for h in dict.fromkeys(["localhost", "127.0.0.1", *hosts]):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            out.append(x509.DNSName(h))
    return out


def make_site(directory: str | Path, hosts: list[str] | None = None, *, site: str = "evidence-triage",
              days: int = 825) -> dict[str, Path]:
    """Write ``ca.pem``/``ca-key.pem`` and ``ROLE.pem``/``ROLE-key.pem`` for each role into ``directory``.

    Refuses (InputError) when any of those files exists already: replacing a CA
    silently would lock every machine holding the old certificates out.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = Path(directory)
    files = {"ca": d / "ca.pem", "ca-key": d / "ca-key.pem"}
    for role in ROLES:
        files[role], files[f"{role}-key"] = d / f"{role}.pem", d / f"{role}-key.pem"
    clash = [p for p in files.values() if p.exists()]
    if clash:
        raise InputError(f"{clash[0]}: exists already; certificates are never overwritten (use an empty directory)")
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    until = now + dt.timedelta(days=days)

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, site),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"{site} cluster CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    _write(files["ca-key"], pem_key(ca_key), private=True)
    _write(files["ca"], ca.public_bytes(serialization.Encoding.PEM), private=False)
    for role in ROLES:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, site),
                                         x509.NameAttribute(NameOID.COMMON_NAME, f"{site} {role}")]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(until)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName(_names(hosts or [])), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        _write(files[f"{role}-key"], pem_key(key), private=True)
        _write(files[role], cert.public_bytes(serialization.Encoding.PEM), private=False)
    log.info("site certificates written to %s, valid until %s", d, until.isoformat())
    return files
