"""What ``pyproject.toml`` maps into the wheel, checked without building one (issue 9, item 1).

The wheel is one import package, ``releasesim``, mapped from the repository's rooms. A module
in a folder that is not a listed package, a scenario or schema file that no package-data glob
matches, or a second top-level package would only show up after ``pip install .``; these
checks catch it in milliseconds. ``.ci/smoke_wheel.sh`` builds and installs the real wheel.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PACKAGES: list[str] = SETUPTOOLS["packages"]
PACKAGE_DIR: dict[str, str] = SETUPTOOLS.get("package-dir", {})
PACKAGE_DATA: dict[str, list[str]] = SETUPTOOLS.get("package-data", {})
SHIPPED_SCENARIOS = {
    "bad_release_rollback",
    "baseline",
    "certify_threshold",
    "halt_at_height",
    "compromised_signers",
    "lagging_release",
    "signer_churn",
}


def source_dir(package: str) -> Path:
    """The folder setuptools reads ``package`` from (the nearest package-dir entry wins)."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        mapped = PACKAGE_DIR.get(".".join(parts[:cut]))
        if mapped is not None:
            return ROOT / mapped / Path(*parts[cut:])
    return ROOT / PACKAGE_DIR.get("", ".") / Path(*parts)


def shipped_data(package: str) -> set[str]:
    """Files of ``package`` (relative to its folder) that its package-data globs match."""
    folder = source_dir(package)
    return {
        path.relative_to(folder).as_posix()
        for pattern in PACKAGE_DATA.get(package, [])
        for path in folder.glob(pattern)
        if path.is_file()
    }


def test_only_releasesim_at_the_top_level() -> None:
    tops = {package.split(".")[0] for package in PACKAGES}
    assert tops == {"releasesim"}, f"pyproject.toml installs top-level packages {sorted(tops)}"
    assert PYPROJECT["project"]["name"] == "releasesim"


def _data_only(package: str) -> bool:
    """A data package: a folder of data files (no Python) listed so its files ship."""
    folder = source_dir(package)
    return folder.is_dir() and not list(folder.glob("*.py")) and bool(PACKAGE_DATA.get(package))


def test_every_package_folder_exists_with_an_init() -> None:
    missing = [
        f"{package} -> {source_dir(package).relative_to(ROOT)}"
        for package in PACKAGES
        if not (source_dir(package) / "__init__.py").is_file() and not _data_only(package)
    ]
    assert not missing, f"packages without a folder holding __init__.py: {missing}"
    unused = sorted(set(PACKAGE_DIR) - set(PACKAGES))
    assert not unused, f"package-dir entries for packages that are not listed: {unused}"


def test_every_room_of_the_checkout_is_mapped() -> None:
    """A folder at the root holding ``__init__.py`` is code; it must be in the wheel."""
    folders = {source_dir(package).resolve() for package in PACKAGES}
    rooms = {init.parent.resolve() for init in ROOT.glob("*/__init__.py")}
    unmapped = sorted(room.name for room in rooms - folders)
    assert not unmapped, f"folders with __init__.py that pyproject.toml does not map: {unmapped}"


def test_every_module_lies_in_a_listed_package() -> None:
    """A ``.py`` file in a sub-folder that is not in ``packages`` would be left out."""
    folders = {source_dir(package).resolve() for package in PACKAGES}
    left_out = sorted(
        str(module.relative_to(ROOT))
        for folder in list(folders)
        for module in folder.rglob("*.py")
        if "__pycache__" not in module.parts and module.parent.resolve() not in folders
    )
    assert not left_out, f"modules in folders that are not listed packages: {left_out}"


@pytest.mark.parametrize("package", sorted(PACKAGE_DATA))
def test_package_data_globs_each_match_a_file(package: str) -> None:
    assert package in PACKAGES, f"package-data for {package}, which is not a listed package"
    folder = source_dir(package)
    for pattern in PACKAGE_DATA[package]:
        assert list(folder.glob(pattern)), f"{package}: glob {pattern!r} matches nothing"


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_data_file_is_shipped(package: str) -> None:
    """Every non-Python file in a package folder is matched by that package's data globs."""
    folder = source_dir(package)
    sub_packages = {
        source_dir(other).resolve() for other in PACKAGES if other.startswith(f"{package}.")
    }
    data = {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix not in {".py", ".pyc"}
        and "__pycache__" not in path.parts
        and not any(parent.resolve() in sub_packages for parent in path.parents)
    }
    missing = sorted(data - shipped_data(package))
    assert not missing, f"{package}: files no package-data glob ships: {missing}"


def test_the_shipped_scenarios_and_ci_suite_are_package_data() -> None:
    shipped = shipped_data("releasesim.scenarios") | {
        f"ci/{name}" for name in shipped_data("releasesim.scenarios.ci")}
    top_level = {Path(name).stem for name in shipped if "/" not in name and name.endswith(".toml")}
    assert top_level == SHIPPED_SCENARIOS
    assert "ci/baseline.json" in shipped, "the CI suite's baseline.json is not package data"
    ci_suite = {Path(name).name for name in shipped if name.startswith("ci/")}
    on_disk = {
        path.name
        for path in (source_dir("releasesim.scenarios") / "ci").iterdir()
        if path.suffix in {".toml", ".json"}
    }
    assert ci_suite == on_disk


def test_the_explorer_schema_is_package_data() -> None:
    shipped = shipped_data("releasesim.explorer") | {
        f"api_schema/{name}" for name in shipped_data("releasesim.explorer.api_schema")}
    assert "api_schema/release_history.json" in shipped, "the explorer's schema is not package data"


def test_console_scripts_run_the_cli() -> None:
    scripts: dict[str, str] = PYPROJECT["project"]["scripts"]
    assert set(scripts) >= {"releasesim"}
    wrong = {
        name: target for name, target in scripts.items() if target != "releasesim.cli.main:main"
    }
    assert not wrong, f"console scripts pointing elsewhere: {wrong}"
    assert "releasesim.cli" in PACKAGES, "the console scripts' package is not in the wheel"
    module_path = source_dir("releasesim.cli") / "main.py"
    assert "\ndef main(" in module_path.read_text(encoding="utf-8"), f"{module_path} has no main()"
