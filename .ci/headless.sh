#!/usr/bin/env bash
# `pip install .` without extras is a headless engine, worker and CLI (a GPU node, a notebook): this installs
# the checkout into a fresh venv without extras, checks that Qt is not there, trains tiny-ddpm for 5 steps
# with `ddae train`, then runs a queued job with `python -m ddae_core.worker RUN_DIR`. Run from anywhere;
# it works in a temporary folder and removes it. torch comes from the same package index as ./bootstrap.sh's.
#   .ci/headless.sh [SOURCE]      SOURCE: the project folder to install (default: this checkout)
set -euo pipefail
checkout=$(cd "${1:-$(dirname "$0")/..}" && pwd)
PYTHON=${PYTHON:-python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ddae-headless.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
say() { echo "headless install: $*"; }
fail() { echo "headless install: FAILED: $*" >&2; exit 1; }

# pip builds a local folder in place (build/, *.egg-info): give it a copy of the project's files, not the checkout.
src=$tmp/src
mkdir "$src"
if git -C "$checkout" rev-parse --show-toplevel > /dev/null 2>&1; then
  # Tracked and new files as they are in the work tree (one deleted there is left out).
  (cd "$checkout" && git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -C "$src" -xf -
else
  cp -r "$checkout"/. "$src"
fi
"$PYTHON" -m venv "$tmp/venv"
py=$tmp/venv/bin/python
# Not editable: the wheel's own files, package data included (presets, migrations, the bundled examples).
"$py" -m pip install -qq "$src"     # -qq: only errors, not the package index's warnings
cd "$tmp"                          # nothing may be imported from the checkout
say "installed $("$py" -c 'import ddae_core, torch; print(ddae_core.__file__, "torch", torch.__version__)')"
case $("$py" -c 'import ddae_core; print(ddae_core.__file__)') in
  "$tmp"/venv/*) ;;
  *) fail "ddae_core is not imported from the venv" ;;
esac
for module in PySide6 pyqtgraph; do
  if "$py" -c "import $module" 2>/dev/null; then fail "$module is importable without the gui extra"; fi
done

ws=$tmp/ws
# Package data: the bundled example run (resources/examples) imports into a workspace.
"$tmp/venv/bin/ddae" import-example shapes --workspace "$ws" > "$tmp/example.out" 2>&1 \
  || { cat "$tmp/example.out"; fail "ddae import-example shapes failed"; }
# The engine and the CLI in the foreground (presets and migrations found as package data).
"$tmp/venv/bin/ddae" train --preset tiny-ddpm --data builtin:shapes --steps 5 --workspace "$ws" --device cpu \
  > "$tmp/train.out" 2>&1 || { cat "$tmp/train.out"; fail "ddae train failed"; }
tail -n 3 "$tmp/train.out"

# The worker on a queued job, as the scheduler starts it (no PYTHONPATH, cwd the run directory).
"$tmp/venv/bin/ddae" train --preset tiny-ddpm --data builtin:shapes --steps 2 --workspace "$ws" --device cpu \
  --queue > "$tmp/queue.out" || fail "ddae train --queue failed"
run=$(awk '/^queued/ {print $2}' "$tmp/queue.out")
[ -n "$run" ] && [ -f "$ws/runs/$run/spec.yaml" ] || fail "no run folder for the queued job ($(cat "$tmp/queue.out"))"
(cd "$ws/runs/$run" && env -u PYTHONPATH "$py" -m ddae_core.worker "$ws/runs/$run" >> log.txt 2>&1) \
  || { cat "$ws/runs/$run/log.txt"; fail "the worker did not exit 0"; }
status=$("$py" -c 'import json, sys
statuses = [e.get("status") for e in map(json.loads, open(sys.argv[1])) if e.get("type") == "status"]
print(statuses[-1] if statuses else None)' "$ws/runs/$run/events.jsonl")
[ "$status" = done ] || fail "the worker's run ended $status, not done"
tail -n 2 "$ws/runs/$run/log.txt"
set +e
"$py" -m ddae_core.worker > /dev/null 2>&1
[ $? = 2 ] || fail "python -m ddae_core.worker without a run directory did not exit 2 (usage)"
"$tmp/venv/bin/ddae-studio" > "$tmp/studio.out" 2>&1
code=$?
set -e
[ $code = 1 ] && grep -q "gui" "$tmp/studio.out" || fail "ddae-studio without Qt: exit $code, $(cat "$tmp/studio.out")"
say "ddae train, the worker and ddae-studio's message work without Qt"
