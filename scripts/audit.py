"""Dependency audit: pip-audit over this environment, summarised for CI and docs.

Exit 1 when any installed package has a known vulnerability; exit 0 (with a warning) when
the advisory service cannot be reached or cannot say anything about the packages (offline
runners, mirrors without PyPI's per-version JSON), so such a runner reports rather than fails.

    python scripts/audit.py                      # pip-audit's PyPI service (default)
    python scripts/audit.py --service osv        # OSV instead
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", default="pypi", choices=("pypi", "osv"))
    args = parser.parse_args()
    cmd = [
        sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "-f", "json",
        "--vulnerability-service", args.service,
    ]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - started
    try:
        deps = json.loads(proc.stdout)["dependencies"]
    except (ValueError, KeyError):
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"pip-audit ({args.service}): advisory service unreachable: {last[:200]}")
        return 0
    vulns = [(d["name"], d["version"], v["id"]) for d in deps for v in d.get("vulns", [])]
    skipped = [d for d in deps if "skip_reason" in d]
    audited = len(deps) - len(skipped)
    print(
        f"pip-audit ({args.service}, {took:.0f} s): {len(deps)} packages, {audited} audited, "
        f"{len(skipped)} not auditable, {len(vulns)} known vulnerabilities"
    )
    for name, version, vid in vulns:
        print(f"  {name} {version}: {vid}")
    if skipped and not audited:
        print(f"  warning: nothing could be audited ({skipped[0]['skip_reason']})")
    return 1 if vulns else 0


if __name__ == "__main__":
    sys.exit(main())
