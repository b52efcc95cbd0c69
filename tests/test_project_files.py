"""The project's own files agree: pyproject.toml's version is the newest CHANGELOG.md heading's and
CITATION.cff's; CITATION.cff has what CFF 1.2.0 requires (checked by structure here: `cffconvert
--validate` checks it against the schema, but is not a dependency); LICENSE is MIT; the pre-commit
configuration pins ruff at the locked version."""

import datetime
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# "## [0.7.0] - 2026-12-06" (Keep a Changelog); "## [Unreleased]" has no version and is skipped.
RELEASE_HEADING = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", re.MULTILINE)


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def citation() -> dict:
    return yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))


def releases() -> list[tuple[str, str]]:
    return RELEASE_HEADING.findall((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))


def as_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_versions_agree():
    version = project()["version"]
    newest, _ = releases()[0]
    assert version == newest, "pyproject.toml's version is not the newest CHANGELOG.md heading's"
    assert str(citation()["version"]) == version, "CITATION.cff's version is not pyproject.toml's"


def test_changelog_releases_are_newest_first_with_real_dates():
    found = releases()
    assert len(found) >= 2
    versions = [as_tuple(version) for version, _ in found]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
    dates = [datetime.date.fromisoformat(day) for _, day in found]
    assert dates == sorted(dates, reverse=True)


def test_citation_has_the_keys_cff_requires():
    cff = citation()
    for key in ("cff-version", "message", "title", "authors", "version", "date-released", "license"):
        assert cff.get(key), f"CITATION.cff lacks {key}"
    assert cff["cff-version"] == "1.2.0"
    assert cff["license"] == "MIT"
    datetime.date.fromisoformat(str(cff["date-released"]))
    assert str(cff["date-released"]) == releases()[0][1], "released on the newest CHANGELOG.md date"
    for author in cff["authors"]:  # a person (family-names) or an entity (name)
        assert author.get("family-names") or author.get("name")


def test_citation_references_the_two_papers():
    references = {ref["title"]: ref for ref in citation()["references"]}
    for ref in references.values():
        assert ref["type"] and ref["authors"] and ref["year"]
        assert all(author.get("family-names") for author in ref["authors"])
    lenet = references["Gradient-based learning applied to document recognition"]
    assert [a["family-names"] for a in lenet["authors"]] == ["LeCun", "Bottou", "Bengio", "Haffner"]
    assert (lenet["year"], lenet["volume"], str(lenet["issue"])) == (1998, 86, "11")
    assert (str(lenet["start"]), str(lenet["end"]), lenet["doi"]) == ("2278", "2324", "10.1109/5.726791")
    alexnet = references["ImageNet Classification with Deep Convolutional Neural Networks"]
    assert [a["family-names"] for a in alexnet["authors"]] == ["Krizhevsky", "Sutskever", "Hinton"]
    assert (alexnet["year"], alexnet["volume"]) == (2012, 25)
    assert (str(alexnet["start"]), str(alexnet["end"])) == ("1097", "1105")


def test_license_is_mit():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026" in text


def test_pre_commit_pins_the_locked_ruff():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    ruff = next(package["version"] for package in lock["package"] if package["name"] == "ruff")
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    repos = {repo["repo"]: repo for repo in config["repos"]}
    assert repos["https://github.com/astral-sh/ruff-pre-commit"]["rev"] == f"v{ruff}"
