"""Build the gateway's Functions package (a zip for ``AzureFunctionApp@2`` on Flex Consumption).

Flex Consumption's remote build reads only ``requirements.txt``, so the package is built here instead:
the dependencies of the project and of its ``gateway`` extra, read from ``pyproject.toml``, are
installed into ``.python_packages/lib/site-packages`` of the package (Linux x86-64, CPython of
``--python-version``), and the app's files are copied in except what ``.funcignore`` excludes.

    python pipelines/scripts/functions_package.py dist/functions.zip
    python pipelines/scripts/functions_package.py dist/functions.zip --no-deps   # files only (tests)
"""

from __future__ import annotations

import argparse
import fnmatch
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXTRA = "gateway"


def requirements(root: Path = ROOT, extra: str = EXTRA) -> list[str]:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"][extra]]


def ignore_patterns(root: Path = ROOT) -> list[str]:
    lines = (root / ".funcignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def ignored(rel: str, patterns: list[str]) -> bool:
    parts = rel.split("/")
    for pat in patterns:
        p = pat.rstrip("/")
        anchored = p.startswith("/")
        p = p.lstrip("/")
        if "/" in p or anchored:
            if fnmatch.fnmatch(rel, p) or any(fnmatch.fnmatch("/".join(parts[:i]), p)
                                             for i in range(1, len(parts))):
                return True
        elif any(fnmatch.fnmatch(part, p) for part in parts):
            return True
    return False


def app_files(root: Path = ROOT) -> list[str]:
    """The files of the package, from git (what is committed), less .funcignore."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True)
    patterns = ignore_patterns(root)
    files = [f for f in out.stdout.decode().split("\0") if f]
    return sorted(f for f in files if not ignored(f, patterns) and (root / f).is_file())


def install_deps(target: Path, python_version: str, root: Path = ROOT) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write("\n".join(requirements(root)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
                    "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
                    "--implementation", "cp", "--python-version", python_version,
                    "--only-binary=:all:", "-r", req.name], check=True)


def build(dest: Path, *, deps: bool, python_version: str, root: Path = ROOT) -> list[str]:
    names = app_files(root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for name in names:
            z.write(root / name, name)
        if deps:
            site = Path(tmp) / ".python_packages/lib/site-packages"
            install_deps(site, python_version, root)
            for f in sorted(site.rglob("*")):
                if f.is_file():
                    z.write(f, str(f.relative_to(tmp)))
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--python-version", default="3.11")
    ap.add_argument("--no-deps", action="store_true")
    args = ap.parse_args(argv)
    names = build(args.dest, deps=not args.no_deps, python_version=args.python_version)
    print(f"{args.dest}: {len(names)} app files" + ("" if args.no_deps else " + .python_packages"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
