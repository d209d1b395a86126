"""Throwaway TLS certificates made with openssl: a CA, server and client certificates, and a client
certificate of another CA (for the refusals)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server cert for localhost/127.0.0.1 signed by it, a client cert signed by it, and a
    client cert signed by another CA. Returns name -> path (ca, server.crt, server.key, client.crt,
    client.key, other.crt, other.key, other_ca)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other_ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=test {ca}",
                 "-keyout", f"{ca}.key", "-out", f"{ca}.crt", cwd=folder)
    (folder / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                       "extendedKeyUsage=serverAuth\n")
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                          ("other", "other_ca", "client.ext")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f"{name}.crt", cwd=folder)
    return {"ca": folder / "ca.crt", "other_ca": folder / "other_ca.crt",
            **{f"{n}.{s}": folder / f"{n}.{s}" for n in ("server", "client", "other") for s in ("crt", "key")}}
