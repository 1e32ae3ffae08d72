"""Atlassian's OpenAPI documents packaged with harbor-confluence (``harbor_confluence/openapi``):
byte for byte the reference copies, read by speccheck when CONFLUENCE_OPENAPI_DIR is unset,
and enough for ``drafts validate`` from an installed wheel far from any checkout."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from harbor_confluence.catalog import speccheck
from tests.conftest import ROOT
from tests.contract import spec_path as reference_path

PACKAGED = ROOT / "harbor_confluence" / "openapi"


def _reference(version: speccheck.ApiVersion) -> bytes:
    path = reference_path(version)  # $CONFLUENCE_OPENAPI_DIR, else ../shared/confluence-openapi
    if not path.is_file():
        pytest.skip(f"the reference copy {path} is not here")
    return path.read_bytes()


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_packaged_documents_are_the_reference_bytes(version: speccheck.ApiVersion) -> None:
    reference = _reference(version)
    provenance = json.loads((PACKAGED / "PROVENANCE.json").read_text())
    (entry,) = [e for e in provenance["documents"] if e["version"] == version]
    packed = (PACKAGED / entry["file"]).read_bytes()
    assert gzip.decompress(packed) == reference
    assert entry["sha256"] == hashlib.sha256(reference).hexdigest()
    assert entry["bytes"] == len(reference) and entry["compressed_bytes"] == len(packed)
    assert (
        entry["source"] and entry["retrieved"] and entry["original"] == reference_path(version).name
    )


def test_speccheck_reads_the_packaged_copy_without_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CONFLUENCE_OPENAPI_DIR", raising=False)
    v2 = speccheck.load_openapi("v2")
    assert v2["info"]["title"] == "The Confluence Cloud REST API v2" and len(v2["paths"]) > 100
    assert speccheck.spec_path("v2").parent == speccheck.PACKAGED_DIR
    assert speccheck.spec_dir() == speccheck.PACKAGED_DIR
    # the variable still wins, and a folder without the documents is a clear error
    monkeypatch.setenv("CONFLUENCE_OPENAPI_DIR", str(tmp_path))
    with pytest.raises(speccheck.SpecUnavailable, match="CONFLUENCE_OPENAPI_DIR"):
        speccheck.load_openapi("v2")


def test_a_damaged_packaged_copy_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    record = json.loads((PACKAGED / "PROVENANCE.json").read_text())
    for entry in record["documents"]:
        data = gzip.decompress((PACKAGED / entry["file"]).read_bytes())
        (tmp_path / entry["file"]).write_bytes(gzip.compress(data.replace(b"Confluence", b"C", 1)))
    (tmp_path / "PROVENANCE.json").write_text(json.dumps(record))
    monkeypatch.delenv("CONFLUENCE_OPENAPI_DIR", raising=False)
    monkeypatch.setattr(speccheck, "PACKAGED_DIR", tmp_path)
    speccheck._load_packaged.cache_clear()
    try:
        with pytest.raises(speccheck.SpecUnavailable, match="does not match the SHA-256"):
            speccheck.load_openapi("v2")
    finally:
        speccheck._load_packaged.cache_clear()


def test_package_openapi_is_reproducible(tmp_path: Path) -> None:
    source = reference_path("v2").parent
    if not reference_path("v2").is_file():
        pytest.skip("no reference copies here")
    speccheck.package_openapi(source, tmp_path)
    for entry in json.loads((PACKAGED / "PROVENANCE.json").read_text())["documents"]:
        assert (tmp_path / entry["file"]).read_bytes() == (PACKAGED / entry["file"]).read_bytes()
    speccheck._load_packaged.cache_clear()


# -- from an installed wheel, away from the repository --------------------------------------------

DRAFT = {
    "name": "lookup-space",
    "description": "Get one space by id.",
    "method": "GET",
    "route": "/wiki/api/v2/spaces/{id}",
    "toolset": "spaces",
    "scopes": ["read:space:confluence"],
    "defaultPolicy": "auto",
    "parameters": {
        "path": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "string", "pattern": "^[0-9]{1,19}$"}},
        }
    },
    "summary": {"fields": {"id": "id", "name": "name"}},
}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_drafts_validate_from_an_installed_wheel(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels),
         str(ROOT)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("harbor_confluence-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "harbor_confluence/openapi/PROVENANCE.json" in names
    assert "harbor_confluence/openapi/confluence-cloud-v2.openapi.json.gz" in names

    away = tmp_path / "elsewhere"  # no checkout and no shared/ beside it
    away.mkdir()
    venv = away / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(away),
           "HARBOR_CONFLUENCE_HOME": str(away / "home"), "LANG": "C.UTF-8"}  # fmt: skip
    assert "CONFLUENCE_OPENAPI_DIR" not in env and "PYTHONPATH" not in env

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "harbor-confluence"), *argv],
            capture_output=True, text=True, env=env, cwd=away, timeout=120, check=False,
        )  # fmt: skip

    show = "import harbor_confluence; print(harbor_confluence.__file__)"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", show],
        capture_output=True, text=True, env=env, cwd=away, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert where.startswith(str(venv)) and str(ROOT) not in where

    (away / "good.yaml").write_text(yaml.safe_dump(DRAFT))
    unknown = {**DRAFT, "name": "space-gizmos", "route": "/wiki/api/v2/spaces/{id}/gizmos"}
    (away / "unknown.yaml").write_text(yaml.safe_dump(unknown))
    for name in ("good.yaml", "unknown.yaml"):
        proposed = run("drafts", "propose", name, "--as", "agent-7")
        assert proposed.returncode == 0, proposed.stderr
    ok = run("drafts", "validate", "lookup-space")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "lookup-space: ok" in ok.stdout
    failed = run("drafts", "validate", "space-gizmos", "--json")
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert json.loads(failed.stdout)["error"]["problems"] == [
        "route /wiki/api/v2/spaces/{id}/gizmos is not in Atlassian's v2 OpenAPI document"
    ]
