#!/usr/bin/env python3
"""One version everywhere, the licenses in every package, and the artifacts' sizes.

    scripts/check-versions.py                 check (exit 1 naming every disagreement)
    scripts/check-versions.py --print         print the version
    scripts/check-versions.py --sizes DIST SO print dist/'s artifacts against their budgets

The version is the Cargo workspace's (`[workspace.package] version`). It must be the one of
bindings-python (maturin reads it from Cargo: `dynamic = ["version"]`), of every package.json
and the platform packages the main one depends on, of the C header's macros, and the newest
entry of CHANGELOG.md; the pkg-config and CMake files take it when scripts/package.sh writes
them. Every package folder carries LICENSE-MIT and LICENSE-APACHE identical to the root's.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["core", "bindings-python", "bindings-node", "bindings-c"]
MB = 1_000_000
# Issue 19's budgets, in bytes (MB = 10^6: the stricter reading).
BUDGETS = [
    (re.compile(r"python/.*\.whl$"), 2 * MB, "each wheel"),
    (re.compile(r"node/ratewise-linux-x64-gnu-.*\.tgz$"), int(2.5 * MB), "the platform npm tarball"),
    (re.compile(r"libratewise\.so\.\d+\.\d+\.\d+$"), 3 * MB, "libratewise.so"),
]


def workspace_version() -> str:
    text = (ROOT / "Cargo.toml").read_text()
    section = text.split("[workspace.package]", 1)[1].split("\n[", 1)[0]
    match = re.search(r'^version\s*=\s*"([^"]+)"', section, re.M)
    if not match:
        sys.exit("Cargo.toml: no version in [workspace.package]")
    return match.group(1)


def check(version: str) -> list[str]:
    problems: list[str] = []

    def expect(where: str, found: str | None) -> None:
        if found != version:
            problems.append(f"{where}: version {found!r}, the workspace's is {version!r}")

    for manifest in sorted(ROOT.glob("*/Cargo.toml")) + sorted(ROOT.glob("*/*/Cargo.toml")):
        text = manifest.read_text()
        own = re.search(r'^\[package\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.M | re.S)
        if own:
            expect(str(manifest.relative_to(ROOT)), own.group(1))
        elif "[package]" in text and "version.workspace = true" not in text:
            problems.append(f"{manifest.relative_to(ROOT)}: neither a version nor version.workspace = true")

    pyproject = (ROOT / "bindings-python/pyproject.toml").read_text()
    static = re.search(r'^version\s*=\s*"([^"]+)"', pyproject, re.M)
    if static:
        expect("bindings-python/pyproject.toml", static.group(1))
    elif not re.search(r'^dynamic\s*=\s*\[[^\]]*"version"', pyproject, re.M):
        problems.append('bindings-python/pyproject.toml: neither a version nor dynamic = ["version"]')

    for path in [ROOT / "bindings-node/package.json", *sorted(ROOT.glob("bindings-node/npm/*/package.json"))]:
        data = json.loads(path.read_text())
        where = str(path.relative_to(ROOT))
        expect(where, data.get("version"))
        for dep, wanted in data.get("optionalDependencies", {}).items():
            expect(f"{where}: optionalDependencies {dep}", wanted)
    platforms = {json.loads(p.read_text())["name"] for p in ROOT.glob("bindings-node/npm/*/package.json")}
    listed = set(json.loads((ROOT / "bindings-node/package.json").read_text()).get("optionalDependencies", {}))
    if platforms != listed:
        problems.append(f"bindings-node/package.json: optionalDependencies {sorted(listed)}, platform packages {sorted(platforms)}")

    header = (ROOT / "bindings-c/include/ratewise.h").read_text()
    macro = re.search(r'^#define RATEWISE_VERSION "([^"]+)"', header, re.M)
    expect("bindings-c/include/ratewise.h RATEWISE_VERSION", macro.group(1) if macro else None)
    for part, name in zip(version.split("-")[0].split("."), ["MAJOR", "MINOR", "PATCH"]):
        m = re.search(rf"^#define RATEWISE_VERSION_{name} (\d+)$", header, re.M)
        if not m or m.group(1) != part:
            problems.append(f"bindings-c/include/ratewise.h: RATEWISE_VERSION_{name} is not {part}")
    for template in ["bindings-c/dist/ratewise.pc.in", "bindings-c/dist/ratewiseConfigVersion.cmake.in"]:
        if "@VERSION@" not in (ROOT / template).read_text():
            problems.append(f"{template}: does not take its version from @VERSION@")

    changelog = (ROOT / "CHANGELOG.md").read_text()
    newest = re.search(r"^## \[?(\d+\.\d+\.\d+[^\]\s]*)\]?", changelog, re.M)
    expect("CHANGELOG.md (newest entry)", newest.group(1) if newest else None)

    for name in ["LICENSE-MIT", "LICENSE-APACHE"]:
        original = (ROOT / name).read_bytes()
        for folder in PACKAGES + [str(p.parent.relative_to(ROOT)) for p in ROOT.glob("bindings-node/npm/*/package.json")]:
            copy = ROOT / folder / name
            if not copy.is_file():
                problems.append(f"{folder}/{name}: missing")
            elif copy.read_bytes() != original:
                problems.append(f"{folder}/{name}: differs from the root's {name}")
    return problems


def sizes(dist: Path, extra: list[Path]) -> int:
    over = 0
    rows = [(str(p.relative_to(dist)), p) for p in sorted(dist.rglob("*")) if p.is_file()]
    rows += [(p.name, p) for p in extra]
    print(f"{'artifact':<58} {'bytes':>11} {'budget':>11}")
    for name, path in rows:
        size = path.stat().st_size
        budget = next(((limit, what) for rx, limit, what in BUDGETS if rx.search(name)), None)
        verdict = ""
        if budget:
            verdict = "ok" if size <= budget[0] else f"OVER ({budget[1]})"
            over += size > budget[0]
        limit = f"{budget[0]:,}" if budget else "-"
        print(f"{name:<58} {size:>11,} {limit:>11} {verdict}")
    return over


def main() -> int:
    version = workspace_version()
    if sys.argv[1:2] == ["--print"]:
        print(version)
        return 0
    if sys.argv[1:2] == ["--sizes"]:
        over = sizes(Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
        if over:
            print(f"{over} artifact(s) over budget", file=sys.stderr)
        return 1 if over else 0
    problems = check(version)
    for p in problems:
        print(f"check-versions: {p}", file=sys.stderr)
    if not problems:
        print(f"check-versions: {version} everywhere; licenses in {len(PACKAGES) + 1} packages")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
