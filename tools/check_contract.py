#!/usr/bin/env python3
"""Contract checks: `buf lint`, then `buf breaking` against the contract of an earlier commit.

    python tools/check_contract.py                  # lint + breaking vs HEAD~1 (the previous commit)
    python tools/check_contract.py --against main   # breaking vs any git ref
    python tools/check_contract.py --history        # ... and against every earlier contract version
    python tools/check_contract.py --root DIR       # another checkout (the tests use temp repos)

What it compares: the working tree (buf.yaml + protos/) against the contract at --against
(default HEAD~1), and, when buf.yaml or protos/ have uncommitted changes, against HEAD as well,
so that an edit is caught before it is committed. With --history, also against every distinct
contract in HEAD's history: a push of several commits whose first one breaks the contract and
whose last one does not touch it passes the HEAD~1 comparison, but not this one (CI uses it).
Works offline: buf reads the local git history (`buf breaking --against '.git#ref=<sha>'`),
nothing is fetched.

The rules are buf.yaml's `breaking` section (FILE category): deleting, renumbering, renaming or
retyping a field, deleting a message, enum value or RPC, changing an RPC's types, moving a type
to another file or package... all fail. Adding fields, messages, RPCs or a new package (v2) passes.

Nothing to compare against is not an error: on the first commit, or when --against holds no
.proto file yet, the breaking check says so and is skipped. A shallow clone that lacks the
commit is an error (fetch more history, e.g. `git fetch --deepen=1`), never a silent pass.

Exit code: 0 all checks passed (or were skipped as said), 1 a check failed, 2 cannot run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACT_PATHS = ("buf.yaml", "protos")


class CannotRun(Exception):
    pass


def find_buf() -> str:
    """buf from the venv that runs this script (pip: buf-bin), else from PATH."""
    beside = Path(sys.executable).parent / "buf"
    if beside.exists():
        return str(beside)
    found = shutil.which("buf")
    if found is None:
        raise CannotRun("buf not found: pip install buf-bin (the project's test extra installs it)")
    return found


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise CannotRun(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def resolve(root: Path, ref: str) -> str | None:
    """The commit `ref` names, or None when it names none."""
    result = git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return result.stdout.strip() or None


def has_protos(root: Path, sha: str) -> bool:
    files = git(root, "ls-tree", "-r", "--name-only", sha).stdout.splitlines()
    return any(name.endswith(".proto") for name in files)


def run_buf(buf: str, root: Path, *args: str) -> bool:
    print(f"$ buf {' '.join(args)}", flush=True)
    result = subprocess.run([buf, *args], cwd=root)
    return result.returncode == 0


def lint(buf: str, root: Path) -> bool:
    ok = run_buf(buf, root, "lint")
    print("buf lint: " + ("ok" if ok else "FAILED"), flush=True)
    return ok


def breaking(buf: str, root: Path, ref: str) -> bool:
    """True if the working tree's contract keeps every promise of the contract at `ref`."""
    if git(root, "rev-parse", "--is-inside-work-tree", check=False).stdout.strip() != "true":
        raise CannotRun(f"{root} is not a git work tree: buf breaking compares against its history")
    sha = resolve(root, ref)
    if sha is None:
        shallow = git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
        if shallow:
            raise CannotRun(f"{ref} is not in this shallow clone: fetch more history (git fetch --deepen=1)")
        if resolve(root, "HEAD") is not None and resolve(root, "HEAD^") is None and ref.startswith("HEAD~"):
            print(f"buf breaking vs {ref}: skipped, HEAD is the first commit (nothing to compare against)")
            return True
        raise CannotRun(f"{ref} names no commit")
    if not has_protos(root, sha):
        print(f"buf breaking vs {ref} ({sha[:12]}): skipped, that commit has no .proto file yet")
        return True
    # the common dir: in a linked worktree the git dir (.git/worktrees/<name>) is not a repository buf can read;
    # in an ordinary clone the two are the same folder
    git_dir = Path(git(root, "rev-parse", "--path-format=absolute", "--git-common-dir").stdout.strip())
    ok = run_buf(buf, root, "breaking", "--against", f"{git_dir}#ref={sha}")
    print(f"buf breaking vs {ref} ({sha[:12]}): " + ("ok" if ok else "FAILED: the change breaks the v1 contract "
          "(v1 takes additive changes only; put breaking ones in absenteeism.v2, see docs/contract.md)"), flush=True)
    return ok


def contract_key(root: Path, sha: str) -> tuple[str, ...]:
    """Identifies a commit's contract: the object ids of buf.yaml and protos/ in it."""
    return tuple(git(root, "rev-parse", "--verify", "--quiet", f"{sha}:{path}", check=False).stdout.strip()
                 for path in CONTRACT_PATHS)


def contract_history(root: Path) -> list[str]:
    """One commit per distinct contract that HEAD's history has had, newest first."""
    if resolve(root, "HEAD") is None:
        return []
    if git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        raise CannotRun("--history needs the whole history, and this clone is shallow (git fetch --unshallow)")
    seen: set[tuple[str, ...]] = set()
    versions = []
    for sha in git(root, "log", "--format=%H", "HEAD", "--", *CONTRACT_PATHS).stdout.split():
        key = contract_key(root, sha)
        if key not in seen:
            seen.add(key)
            versions.append(sha)
    return versions


def uncommitted_contract_changes(root: Path) -> bool:
    if resolve(root, "HEAD") is None:
        return False
    status = git(root, "status", "--porcelain", "--", *CONTRACT_PATHS).stdout
    return bool(status.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout holding buf.yaml and protos/")
    parser.add_argument("--against", default="HEAD~1", help="git ref whose contract must not be broken")
    parser.add_argument("--history", action="store_true",
                        help="also compare against every earlier contract in HEAD's history (each commit that "
                             "changed buf.yaml or protos/), so a break in any commit of a push is caught")
    parser.add_argument("--skip-lint", action="store_true", help="run only the breaking check")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        buf = find_buf()
        ok = True
        if not args.skip_lint:
            ok = lint(buf, root) and ok
        ok = breaking(buf, root, args.against) and ok
        uncommitted = uncommitted_contract_changes(root)
        compared = set()
        against = resolve(root, args.against)
        if against is not None:
            compared.add(contract_key(root, against))
        if args.against != "HEAD" and uncommitted:
            ok = breaking(buf, root, "HEAD") and ok
            compared.add(contract_key(root, "HEAD"))
        if args.history:
            if not uncommitted and resolve(root, "HEAD") is not None:
                compared.add(contract_key(root, "HEAD"))  # the working tree itself: nothing to compare
            earlier = [sha for sha in contract_history(root) if contract_key(root, sha) not in compared]
            print(f"history: {len(earlier)} more earlier contract version(s) to compare against", flush=True)
            for sha in earlier:
                ok = breaking(buf, root, sha) and ok
    except CannotRun as error:
        print(f"check_contract: cannot run: {error}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
