"""The offline dependency audit (scripts/audit_offline.py) on constructed OSV advisories."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("audit_offline", ROOT / "scripts/audit_offline.py")
audit = importlib.util.module_from_spec(_spec)
sys.modules["audit_offline"] = audit  # dataclasses look their module up there
_spec.loader.exec_module(audit)


def advisory(events=None, versions=None, name="demo-pkg", id="PYSEC-0000-1", **extra) -> str:
    """An advisory as the PyPA database writes it (YAML, versions unquoted)."""
    lines = [f"id: {id}", "affected:", "- package:", "    ecosystem: PyPI", f"    name: {name}"]
    if events is not None:
        lines += ["  ranges:", "  - type: ECOSYSTEM", "    events:"]
        lines += [f"    - {kind}: {version}" for kind, version in events]
    if versions is not None:
        lines += ["  versions:"] + [f"  - {v}" for v in versions]
    lines += [f"{key}: {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def findings(yaml_text: str, installed: str, name: str = "demo-pkg") -> list:
    records = audit.load_records([("a.yaml", yaml_text.encode())])
    return audit.match(records, {audit.canonicalize_name(name): (name, installed)})


CASES = [
    # (what, advisory, installed version, affected?, fixed in)
    ("before the fix", advisory([("introduced", 0), ("fixed", "2.0")]), "1.9", True, "2.0"),
    ("at the fix", advisory([("introduced", 0), ("fixed", "2.0")]), "2.0", False, ""),
    ("after the fix", advisory([("introduced", 0), ("fixed", "2.0")]), "2.0.1", False, ""),
    # unquoted 1.10 must stay the version 1.10, not the float 1.1
    ("two-digit minor", advisory([("introduced", 0), ("fixed", "1.10")]), "1.9", True, "1.10"),
    ("before introduced", advisory([("introduced", "1.0"), ("fixed", "2.0")]), "0.9", False, ""),
    ("at last_affected", advisory([("introduced", "1.0"), ("last_affected", "1.5")]), "1.5", True, ""),
    ("past last_affected", advisory([("introduced", "1.0"), ("last_affected", "1.5")]), "1.5.1", False, ""),
    ("open range", advisory([("introduced", "1.0")]), "99.0", True, ""),
    ("empty range", advisory([("introduced", "1.0"), ("fixed", "1.0")]), "1.0", False, ""),
    ("second range", advisory([("introduced", 0), ("fixed", "1.2"), ("introduced", "2.0"), ("fixed", "2.3")]), "2.1", True, "2.3"),
    ("between ranges", advisory([("introduced", 0), ("fixed", "1.2"), ("introduced", "2.0"), ("fixed", "2.3")]), "1.5", False, ""),
    ("first range", advisory([("introduced", 0), ("fixed", "1.2"), ("introduced", "2.0"), ("fixed", "2.3")]), "1.0", True, "1.2"),
    ("listed version", advisory(versions=["1.1", "1.10"]), "1.10", True, ""),
    ("unlisted version", advisory(versions=["1.1", "1.10"]), "1.2", False, ""),
    ("local label in range", advisory([("introduced", 0), ("fixed", "2.1.1")]), "2.1.0+cpu", True, "2.1.1"),
    ("local label listed", advisory(versions=["2.1.0"]), "2.1.0+cu128", True, ""),
    ("withdrawn", advisory([("introduced", 0)], withdrawn="2024-01-01T00:00:00Z"), "1.0", False, ""),
    ("name spelled otherwise", advisory([("introduced", 0)], name="Demo_Pkg"), "1.0", True, ""),
    # OSV: a limit closes the range for every version at or above it
    ("below a limit", advisory([("introduced", 0), ("limit", "3.0")]), "2.9", True, ""),
    ("at a limit", advisory([("introduced", 0), ("limit", "3.0")]), "3.0", False, ""),
    ("above a limit", advisory([("introduced", 0), ("limit", "3.0")]), "3.1", False, ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "installed", "affected", "fixed_in"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_matching_follows_the_osv_rules(text, installed, affected, fixed_in):  # fmt: skip
    found = findings(text, installed)
    assert bool(found) == affected
    if affected:
        assert found[0].advisory == "PYSEC-0000-1"
        assert found[0].installed == installed
        assert found[0].fixed_in == fixed_in


def test_other_ecosystems_and_git_ranges_do_not_match():
    npm = advisory([("introduced", 0)]).replace("ecosystem: PyPI", "ecosystem: npm")
    assert findings(npm, "1.0") == []
    git = advisory([("introduced", 0), ("fixed", "abc123")]).replace("ECOSYSTEM", "GIT")
    assert findings(git, "1.0") == []


def test_one_finding_per_vulnerability_known_under_two_ids():
    pysec = advisory([("introduced", 0)], id="PYSEC-1", aliases="[GHSA-aaaa]")
    ghsa = advisory([("introduced", 0)], id="GHSA-aaaa", aliases="[PYSEC-1]")
    records = audit.load_records([("a", pysec.encode()), ("b", ghsa.encode())])
    found = audit.match(records, {"demo-pkg": ("demo-pkg", "1.0")})
    assert [f.advisory for f in found] == ["PYSEC-1"]


def test_a_range_that_is_not_pep_440_is_reported():
    records = audit.load_records(
        [("a", advisory([("introduced", 0), ("fixed", "2019-09-12x")]).encode())]
    )
    assert audit.unevaluable(records, {"demo-pkg": ("demo-pkg", "1.0")}) == ["PYSEC-0000-1"]


def _database(folder: Path, text: str) -> Path:
    (folder / "vulns/packaging").mkdir(parents=True)
    (folder / "vulns/packaging/PYSEC-0000-1.yaml").write_text(text)
    return folder


def _run(db: Path, tmp_path: Path) -> tuple[int, dict]:
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/audit_offline.py"),
            "--db",
            str(db),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    return proc.returncode, json.loads(out.read_text())


@pytest.mark.parametrize("form", ["checkout", "git directory", "zip"])
def test_the_script_flags_an_installed_package_from_each_form_of_database(tmp_path, form):
    # `packaging` is installed wherever the tests run; every version of it is "affected" here
    repo = _database(
        tmp_path / "advisory-database", advisory([("introduced", 0)], name="packaging")
    )
    db = repo
    if form == "git directory":
        git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-qm", "snapshot"], check=True)
        db = repo / ".git"
    elif form == "zip":
        db = tmp_path / "advisory-database-main.zip"
        with zipfile.ZipFile(db, "w") as archive:
            archive.write(
                repo / "vulns/packaging/PYSEC-0000-1.yaml",
                "advisory-database-main/vulns/packaging/PYSEC-0000-1.yaml",
            )
    code, report = _run(db, tmp_path)
    assert code == 1
    assert report["advisories"] == 1
    assert [(f["package"], f["advisory"]) for f in report["findings"]] == [
        ("packaging", "PYSEC-0000-1")
    ]


def test_the_script_passes_when_nothing_installed_is_affected(tmp_path):
    db = _database(
        tmp_path / "db", advisory([("introduced", 0), ("fixed", "0.1")], name="packaging")
    )
    code, report = _run(db, tmp_path)
    assert code == 0
    assert report["findings"] == []
    assert report["packages"] > 10
