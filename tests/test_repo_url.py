"""One repository URL: `course.REPO_URL`. The README, the Colab badges and the
notebooks' install cells must all point to it, so a fork changes one constant
and this test lists every place that still points elsewhere."""

import json
import pathlib
import re

from agekeras.experiments import course

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
GITHUB = re.compile(r"github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?(?=[/\s\"')\]]|$)")
COLAB = re.compile(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/main/notebooks/([\w.-]+\.ipynb)")


def repo():
    return course.REPO_URL.removeprefix("https://github.com/")


def github_repos(text):
    """Every `owner/name` a text links to on GitHub, Colab links included."""
    return set(GITHUB.findall(text)) | {m[0] for m in COLAB.findall(text)}


def test_repo_url_is_a_github_repository():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", course.REPO_URL)


def test_readme_points_to_the_repository_and_its_badges_to_existing_notebooks():
    text = (ROOT / "README.md").read_text()
    assert f"REPO_URL = {course.REPO_URL}" in text
    assert f"git+{course.REPO_URL}" in text
    assert all(m.startswith(f"git+{course.REPO_URL}") for m in re.findall(r"git\+[^\s\"']+", text)), "a git+ URL"
    ours = {r for r in github_repos(text) if r.split("/")[1] == repo().split("/")[1]}
    assert ours == {repo()}, ours
    badges = COLAB.findall(text)
    assert {name for _, name in badges} == {p.name for p in NOTEBOOKS}
    assert {owner for owner, _ in badges} == {repo()}


def test_notebooks_install_from_the_repository_and_their_badges_agree():
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells)
        install = [s for s in ("".join(c["source"]) for c in cells if c["cell_type"] == "code") if "pip" in s and "git+" in s]
        assert install and all(f"git+{course.REPO_URL}" in s for s in install), f"{path.name}: install cell"
        ours = {r for r in github_repos(text) if r.split("/")[1] == repo().split("/")[1]}  # papers' code repos may appear
        assert ours <= {repo()}, f"{path.name} links to {ours - {repo()}}"
        assert all(f"git+{course.REPO_URL}" in m for m in re.findall(r"git\+\S+", text)), f"{path.name}: a git+ URL"
        for owner, name in COLAB.findall(text):
            assert name == path.name, f"{path.name}: its Colab badge opens {name}"


def test_the_check_sees_a_stray_url():
    assert github_repos("pip install git+https://github.com/someone/fork") == {"someone/fork"}
    assert github_repos("[![b](x)](https://colab.research.google.com/github/a/b/blob/main/notebooks/01.ipynb)") == {"a/b"}
