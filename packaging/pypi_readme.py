"""Write docs/pypi.md, the PyPI long description, from README.md.

README.md links to docs/*.md and shows docs/screenshot.png by relative paths, which render on
the repository host but not on PyPI. PyPI gets a copy where every relative link points into
the repository: ``[project.urls] Repository`` in pyproject.toml (a GitHub URL gives blob/ links
and a raw.githubusercontent.com image). While the project has no public repository URL, a link
becomes its text plus the file's path in the sdist, and the screenshot is left out, rather than
pointing at a guessed address.

``python packaging/pypi_readme.py`` rewrites docs/pypi.md; ``--check`` exits 1 when it is stale
(tests/packaging runs the check).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "<!-- Generated from README.md by packaging/pypi_readme.py: edit README.md, then rerun it. -->\n"
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str | None:
    urls = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"].get("urls", {})
    url = urls.get("Repository") or urls.get("Source")
    return url.rstrip("/") if url else None


def pypi_markdown(readme: str, repo: str | None) -> str:
    """``readme`` with relative links made absolute under ``repo`` (or unlinked when it is None)."""

    def fix(match: re.Match[str]) -> str:
        bang, text, target = match.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return match.group(0)  # already absolute (https:, mailto:) or an anchor on the page
        if repo is None:  # no public URL yet: the docs ship in the sdist (MANIFEST.in)
            return "" if bang else f"{text} (`{target}` in the source distribution)"
        if repo.startswith("https://github.com/"):
            owner_repo = repo.removeprefix("https://github.com/")
            base = f"https://raw.githubusercontent.com/{owner_repo}/HEAD" if bang else f"{repo}/blob/HEAD"
        else:
            base = repo
        return f"{bang}[{text}]({base}/{target.lstrip('./')})"

    text = _LINK.sub(fix, readme)
    text = re.sub(r"\n{3,}", "\n\n", text)  # a removed image leaves an empty paragraph
    return HEADER + text


def main(argv: list[str]) -> int:
    target = ROOT / "docs" / "pypi.md"
    wanted = pypi_markdown((ROOT / "README.md").read_text(encoding="utf-8"), repository_url())
    if "--check" in argv:
        if not target.is_file() or target.read_text(encoding="utf-8") != wanted:
            print(f"{target} is stale: run python packaging/pypi_readme.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(wanted, encoding="utf-8")
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
