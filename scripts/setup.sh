#!/usr/bin/env bash
# Make .venv/ in the checkout with everything the grader and its tests need.
# Safe to rerun: an existing .venv is reused and brought up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's python3.11 (not a Python under /root) so that the unprivileged
# sandbox user can run the same environment.
python=python3
for candidate in /usr/bin/python3.11 /usr/bin/python3; do
    if [ -x "$candidate" ]; then python=$candidate; break; fi
done

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# The distribution was called `autograder` (another project's name on PyPI) before it
# became dl-notebook-autograder: a .venv made then holds it under the old name.
if .venv/bin/python -m pip show --quiet autograder >/dev/null 2>&1; then
    .venv/bin/python -m pip uninstall --quiet --yes autograder
fi
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
# Weights and datasets: no network here, so generate the stand-ins once (about
# two minutes). An instructor with a network runs `autograder assets fetch`.
if ! .venv/bin/autograder assets status >/dev/null; then
    .venv/bin/autograder assets synth
fi
echo "ready: .venv/bin/autograder"
