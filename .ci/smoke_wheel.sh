#!/usr/bin/env bash
# Smoke test of the built wheel, the way a user gets releasesim: build the wheel, install it
# with its dependencies into a fresh venv outside the checkout, and run the installed command
# from a folder where the checkout is not on sys.path. Catches a module, a scenario file or a
# schema that `pip install .` leaves out, and anything that lands at the top of site-packages
# besides `releasesim` (issue 9). Prints the time of each step; exit 1 on the first failure.
#
#   .ci/smoke_wheel.sh            # or: python3 tasks.py smoke
#
# PYTHON (default .venv/bin/python) builds the wheel and creates the venv; KEEP=1 keeps the
# temporary folder for a look afterwards.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
# every scenario of the checkout must be in the wheel
mapfile -t SHIPPED_SCENARIOS < <(cd "$ROOT/scenarios" && for f in *.toml; do echo "${f%.toml}"; done)
FOREIGN_TOP_LEVEL=(model sim reports cli explorer scenarios)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/releasesim-smoke.XXXXXX")"
if [[ "${KEEP:-0}" == 1 ]]; then
    echo "smoke: keeping $WORK"
else
    trap 'rm -rf "$WORK"' EXIT
fi
case "$WORK/" in
    "$ROOT"/*) echo "smoke: FAIL: temporary folder $WORK is inside the checkout" >&2; exit 1 ;;
esac

fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
step_start=$SECONDS
step() {  # step NAME: announce a step and start its clock
    echo "smoke: $1"
    step_start=$SECONDS
}
done_step() { echo "smoke:   ok ($((SECONDS - step_start)) s)"; }
total_start=$SECONDS

# 1. Build from a copy of the sources git knows about (tracked and new, not ignored), so the
#    checkout gets no build/ folder and no stale build/lib file can slip into the wheel.
step "copy the sources and build the wheel"
SRC="$WORK/src"
mkdir -p "$SRC" "$WORK/dist"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' path; do
            [[ -e "$ROOT/$path" ]] && printf '%s\0' "$path"
        done \
        | tar -C "$ROOT" --null -T - -cf - | tar -C "$SRC" -xf -
else
    tar -C "$ROOT" --exclude=./.venv --exclude=./.git --exclude=./build --exclude=./dist \
        --exclude=./runs --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$SRC" -xf -
fi
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/dist" "$SRC" >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log" >&2; fail "building the wheel"; }
shopt -s nullglob
wheels=("$WORK"/dist/releasesim-*.whl)
shopt -u nullglob
[[ ${#wheels[@]} -eq 1 ]] || fail "expected one releasesim wheel in $WORK/dist, found ${#wheels[@]}"
WHEEL="${wheels[0]}"
VERSION="$(basename "$WHEEL" | cut -d- -f2)"
echo "smoke:   $(basename "$WHEEL")"
done_step

# 2. A fresh venv outside the checkout, with the wheel and its dependencies (pip reuses the
#    wheels it cached for .venv, so this is mostly unpacking).
step "create a fresh venv and install the wheel with its dependencies"
"$PYTHON" -m venv "$WORK/venv"
VENV_PY="$WORK/venv/bin/python"
"$VENV_PY" -m pip install --quiet --disable-pip-version-check "$WHEEL" >"$WORK/install.log" 2>&1 \
    || { cat "$WORK/install.log" >&2; fail "installing $(basename "$WHEEL") into a fresh venv"; }
done_step

# 3. What landed in site-packages: one top-level package of ours, nothing generic, no link
#    back to the checkout.
step "check what the wheel put into site-packages"
mkdir -p "$WORK/cwd"
cd "$WORK/cwd"
unset PYTHONPATH PYTHONHOME
export PYTHONSAFEPATH=1  # belt and braces: never put the current folder on sys.path
"$VENV_PY" - "$ROOT" "${FOREIGN_TOP_LEVEL[@]}" <<'EOF' || fail "site-packages check (above)"
import sys
import sysconfig
from importlib.metadata import distribution
from pathlib import Path

root = Path(sys.argv[1]).resolve()
foreign = sys.argv[2:]
site = Path(sysconfig.get_paths()["purelib"]).resolve()
problems = []
files = distribution("releasesim").files or []
top = sorted({f.parts[0] for f in files if not f.parts[0].endswith(".dist-info")
              and f.parts[0] not in ("..", "__pycache__")})
if top != ["releasesim"]:
    problems.append(f"the wheel installs top-level {top}, expected only ['releasesim']")
for name in foreign:
    if (site / name).exists() or (site / f"{name}.py").exists():
        problems.append(f"site-packages holds a top-level '{name}'")
if list(site.glob("*releasesim*.pth")) or list(site.glob("__editable__*")):
    problems.append("site-packages holds an editable link (.pth) to a checkout")
import releasesim  # noqa: E402
where = Path(releasesim.__file__).resolve()
if site not in where.parents:
    problems.append(f"releasesim is imported from {where}, not from {site}")
if root in where.parents or any(Path(p or ".").resolve() == root for p in sys.path):
    problems.append(f"the checkout {root} is on sys.path")
for problem in problems:
    print(f"smoke:   {problem}", file=sys.stderr)
if not problems:
    print(f"smoke:   top level: {top}; imported from {where.parent}")
sys.exit(1 if problems else 0)
EOF
done_step

# 4. The installed command, as a user runs it (from $WORK/cwd, no checkout in sight).
RS="$WORK/venv/bin/releasesim"
[[ -x "$RS" ]] || fail "the wheel installs no releasesim command"
[[ -x "$WORK/venv/bin/contract" ]] || fail "the wheel installs no contract command"

step "releasesim --version"
out="$("$RS" --version)" || fail "releasesim --version exited $?"
echo "smoke:   $out"
[[ "$out" == "releasesim $VERSION" ]] \
    || fail "releasesim --version printed '$out', not 'releasesim $VERSION'"
done_step

step "releasesim scenarios list"
listing="$("$RS" scenarios list)" || fail "releasesim scenarios list exited $?"
listed="$(awk 'NF {print $1}' <<<"$listing" | sort | tr '\n' ' ')"
wanted="$(printf '%s\n' "${SHIPPED_SCENARIOS[@]}" | sort | tr '\n' ' ')"
[[ "$listed" == "$wanted" ]] || fail "scenarios list printed '$listed', expected '$wanted'"
done_step

step "releasesim scenarios show lagging_release"
shown="$("$RS" scenarios show lagging_release)" || fail "scenarios show lagging_release exited $?"
grep -q '^name = "lagging_release"' <<<"$shown" \
    || fail "scenarios show lagging_release did not print the resolved scenario"
done_step

step "releasesim run baseline -n 2 --set fleet.nodes=50"
"$RS" run baseline -n 2 --set fleet.nodes=50 --out "$WORK/cwd/run" >"$WORK/run.log" 2>&1 \
    || { cat "$WORK/run.log" >&2; fail "releasesim run baseline exited non-zero"; }
tail -n 1 "$WORK/run.log" | sed 's/^/smoke:   /'
for artefact in manifest.json summary.parquet nodes.parquet events.parquet report.html; do
    [[ -s "$WORK/cwd/run/$artefact" ]] || fail "the run directory has no $artefact"
done
done_step

step "releasesim check (the shipped CI suite)"
"$RS" check --junit "$WORK/cwd/check-junit.xml" >"$WORK/check.log" 2>&1 \
    || { cat "$WORK/check.log" >&2; fail "releasesim check exited non-zero"; }
tail -n 1 "$WORK/check.log" | sed 's/^/smoke:   /'
done_step

echo "smoke: wheel smoke test passed in $((SECONDS - total_start)) s"
