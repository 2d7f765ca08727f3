"""Dependency audit against a local copy of the PyPA advisory database (OSV format).

For machines that reach the package index but no advisory service: pip-audit asks PyPI's
per-version JSON or OSV's web API, and neither answers there (docs/reliability.md).

    python scripts/audit_offline.py --db PATH [--json OUT] [--markdown]

PATH is the PyPA advisory database (github.com/pypa/advisory-database): a checkout, its git
directory (bare or not; read with `git archive`, no work tree needed) or a .zip/.tar.gz of it.
Every installed distribution (importlib.metadata, names normalised per PEP 503) is checked
against every advisory; exit 1 when an installed version is affected, like scripts/audit.py.

Why hand-written: no maintained tool reachable here matches against a local database.
pip-audit only queries online services (its --osv-url still needs a server that does the
matching), osv-scanner is a Go binary that no reachable registry ships, and safety needs its
own online database. The matching follows the OSV schema's evaluation rules
(ossf.github.io/osv-schema, "Evaluation"): ECOSYSTEM ranges of introduced / fixed /
last_affected events, explicit `versions` lists, withdrawn advisories skipped; GIT ranges
(commit hashes) cannot be checked against an installed wheel and are left to the other two.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

# at one version, an introduced event opens before a last_affected or fixed one closes, so
# "introduced X, fixed X" is an empty range rather than an open one
_EVENT_ORDER = {"introduced": 0, "last_affected": 1, "fixed": 2, "limit": 3}


@dataclass(frozen=True)
class Finding:
    """One installed distribution inside one advisory's affected versions."""

    package: str
    installed: str
    advisory: str
    aliases: tuple[str, ...]
    fixed_in: str  # the lowest fixed version above the installed one; "" when none is known
    summary: str


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _in_range(version: Version, events: list[dict]) -> bool | None:
    """Whether `version` lies in one ECOSYSTEM range; None when an event cannot be parsed."""
    parsed = []
    for event in events:
        for kind, text in event.items():
            if kind not in _EVENT_ORDER:
                continue
            bound = _version(str(text))
            if bound is None:
                return None
            parsed.append((bound, _EVENT_ORDER[kind], kind))
    affected = False
    for bound, _, kind in sorted(parsed):
        if kind == "introduced" and version >= bound:
            affected = True
        elif (kind == "fixed" and version >= bound) or (
            kind == "last_affected" and version > bound
        ):
            affected = False
        elif kind == "limit" and version >= bound:
            return False  # OSV: versions at or above a limit are outside the range
    return affected


def affects(entry: dict, installed: str) -> bool:
    """Whether one `affected[]` entry of an OSV record covers the installed version string."""
    version = _version(installed)
    # local labels (+cpu, +cu128) build the same release: compare the public version
    public = version.public if version is not None else installed
    for listed in entry.get("versions") or []:
        other = _version(str(listed))
        if str(listed) == installed or (other is not None and other.public == public):
            return True
    if version is None:
        return False
    public_version = Version(public)
    for rng in entry.get("ranges") or []:
        if rng.get("type") == "ECOSYSTEM" and _in_range(public_version, rng.get("events") or []):
            return True
    return False


def next_fix(entry: dict, installed: str) -> str:
    """The lowest `fixed` event above the installed version in the entry's ECOSYSTEM ranges."""
    version = _version(installed)
    fixes = []
    for rng in entry.get("ranges") or []:
        if rng.get("type") != "ECOSYSTEM":
            continue
        for event in rng.get("events") or []:
            fixed = _version(str(event.get("fixed", "")))
            if fixed is not None and (version is None or fixed > version):
                fixes.append(fixed)
    return str(min(fixes)) if fixes else ""


def match(records: Iterable[dict], installed: dict[str, tuple[str, str]]) -> list[Finding]:
    """Every (installed package, advisory) pair where the advisory covers the version.

    `installed` maps the PEP 503 name to (display name, version). Withdrawn records are
    skipped; a record whose id or alias was already reported for the package is not repeated.
    """
    findings: list[Finding] = []
    seen: dict[str, set[str]] = {}
    for record in records:
        if record.get("withdrawn"):
            continue
        ids = {record["id"], *(record.get("aliases") or [])}
        for entry in record.get("affected") or []:
            pkg = entry.get("package") or {}
            if pkg.get("ecosystem") != "PyPI":
                continue
            key = canonicalize_name(pkg.get("name", ""))
            if key not in installed or not seen.get(key, set()).isdisjoint(ids):
                continue
            name, version = installed[key]
            if affects(entry, version):
                seen.setdefault(key, set()).update(ids)
                summary = record.get("summary") or record.get("details") or ""
                findings.append(
                    Finding(
                        package=name,
                        installed=version,
                        advisory=record["id"],
                        aliases=tuple(sorted(record.get("aliases") or [])),
                        fixed_in=next_fix(entry, version),
                        summary=" ".join(summary.split())[:160],
                    )
                )
    return sorted(findings, key=lambda f: (f.package.lower(), f.advisory))


def unevaluable(records: Iterable[dict], installed: dict[str, tuple[str, str]]) -> list[str]:
    """Ids of live advisories on installed packages with an ECOSYSTEM range whose bounds are not
    PEP 440 versions: they are matched by their `versions` list only, so they are listed."""
    ids = []
    for record in records:
        for entry in record.get("affected") or []:
            key = canonicalize_name((entry.get("package") or {}).get("name", ""))
            if record.get("withdrawn") or key not in installed:
                continue
            for rng in entry.get("ranges") or []:
                events = rng.get("events") or []
                if rng.get("type") == "ECOSYSTEM" and _in_range(Version("0"), events) is None:
                    ids.append(record["id"])
    return ids


def installed_distributions() -> dict[str, tuple[str, str]]:
    """PEP 503 name -> (name, version) of what this interpreter imports (first on sys.path)."""
    found: dict[str, tuple[str, str]] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonicalize_name(name) not in found:
            found[canonicalize_name(name)] = (name, dist.version)
    return found


def _git(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", f"--git-dir={db}", *args], capture_output=True)


def _read_db(db: Path) -> tuple[Iterator[tuple[str, bytes]], str]:
    """(name, bytes) of every advisory file under vulns/, and a label saying which snapshot."""
    if (db / "vulns").is_dir():
        files = ((str(p), p.read_bytes()) for p in sorted((db / "vulns").rglob("*.yaml")))
        git_dir = db / ".git"
        head = _git(git_dir, "log", "-1", "--format=%H %cI") if git_dir.exists() else None
        label = head.stdout.decode().strip() if head and head.returncode == 0 else str(db)
        return files, label
    head = _git(db, "log", "-1", "--format=%H %cI")
    if head.returncode == 0:
        tar = _git(db, "archive", "--format=tar", "HEAD", "vulns")
        if tar.returncode != 0:
            sys.exit(f"git archive of {db} failed: {tar.stderr.decode().strip()}")
        return _tar_members(tarfile.open(fileobj=io.BytesIO(tar.stdout))), head.stdout.decode()
    if zipfile.is_zipfile(db):
        archive = zipfile.ZipFile(db)
        names = [n for n in archive.namelist() if "vulns/" in n and n.endswith(".yaml")]
        return ((n, archive.read(n)) for n in sorted(names)), db.name
    if db.is_file() and tarfile.is_tarfile(db):
        return _tar_members(tarfile.open(db)), db.name
    sys.exit(
        f"{db}: not the PyPA advisory database. Fix: pass a checkout of "
        "github.com/pypa/advisory-database, its git directory, or a .zip/.tar.gz of it."
    )


def _tar_members(archive: tarfile.TarFile) -> Iterator[tuple[str, bytes]]:
    for member in archive:
        if member.isfile() and "vulns/" in member.name and member.name.endswith(".yaml"):
            yield member.name, archive.extractfile(member).read()


def load_records(files: Iterable[tuple[str, bytes]]) -> list[dict]:
    # BaseLoader keeps every scalar a string: the safe loader would read `fixed: 1.10` as the
    # float 1.1 and turn a version into another one
    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)  # libyaml when built with it
    return [yaml.load(data, Loader=loader) for _, data in files]


def markdown(findings: list[Finding]) -> str:
    rows = ["| package | installed | advisory | aliases | fixed in | summary |", "| --- " * 6 + "|"]
    for f in findings:
        summary = f.summary.replace("|", "/")
        rows.append(
            f"| {f.package} | {f.installed} | {f.advisory} | {', '.join(f.aliases)} | "
            f"{f.fixed_in or 'no fix'} | {summary} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="PyPA advisory database")
    parser.add_argument("--json", type=Path, help="also write the findings here as JSON")
    parser.add_argument("--markdown", action="store_true", help="print a findings table")
    args = parser.parse_args()
    files, snapshot = _read_db(args.db)
    records = load_records(files)
    installed = installed_distributions()
    findings = match(records, installed)
    withdrawn = sum(1 for r in records if r.get("withdrawn"))
    print(
        f"offline audit (PyPA advisory database {snapshot.strip()}): {len(records)} advisories "
        f"({withdrawn} withdrawn), {len(installed)} installed packages audited, "
        f"{len(findings)} affected"
    )
    for f in findings:
        print(f"  {f.package} {f.installed}: {f.advisory} fixed in {f.fixed_in or 'no fix'}")
    for advisory in unevaluable(records, installed):
        print(
            f"  warning: {advisory} has a range that is not PEP 440; only its versions list was checked"
        )
    if args.markdown and findings:
        print(markdown(findings))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "database": snapshot.strip(),
                    "advisories": len(records),
                    "packages": len(installed),
                    "findings": [asdict(f) for f in findings],
                },
                indent=2,
            )
        )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
