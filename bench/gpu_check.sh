#!/usr/bin/env bash
# The engine's CUDA path, checked by hand on a machine with an NVIDIA GPU:
# each reference notebook graded twice by the same grader, once with the GPU
# visible to the kernel and once with it hidden (CUDA_VISIBLE_DEVICES=""),
# then the scores compared. Prints a table; writes the JSON results to $OUT
# (or ./gpu-check) when given.
#
# Needs: this checkout, a Python with torch and torchvision, and the
# grader's other packages installed (or wheels in .whl/, installed first).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check}
mkdir -p "$out"
python=${PYTHON:-python3}

if [ "${INSTALL_WHEELS:-0}" = 1 ]; then  # the device machine: wheels carried in .whl/
    "$python" -m pip install -q --no-index --no-deps --no-compile .whl/*.whl || exit 1
fi
nvidia-smi -L || true
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

export AUTOGRADER_ASSETS=${AUTOGRADER_ASSETS:-/tmp/autograder-assets}
export AUTOGRADER_WAIVE_ISOLATION=1  # where this machine cannot build the sandbox, grade all the same
if ! "$python" -m autograder assets status >/dev/null; then
    start=$(date +%s)
    "$python" -m autograder assets synth >"$out/synth.log" 2>&1 || { tail "$out/synth.log"; exit 1; }
    echo "assets synth: $(( $(date +%s) - start )) s"
fi

# The kernel's own view of the device, through the grader's bridge.
"$python" - <<'EOF'
import nbformat
from autograder.config import AssignmentConfig
from autograder.execution import executed_notebook
from autograder.isolation import open_workspace

notebook = nbformat.v4.new_notebook()
notebook.cells = [nbformat.v4.new_code_cell("import torch\ndevice = torch.device('cuda' if torch.cuda.is_available() else 'cpu')")]
config = AssignmentConfig()
with open_workspace(config) as workspace, executed_notebook(notebook, workspace=workspace, config=config) as (report, student):
    seen = student.probe("result = (str(device), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')")
    print("kernel sees:", *seen)
EOF

printf '%-22s %-6s %-10s %-8s %s\n' assignment device score seconds status
for notebook in ${NOTEBOOKS:-solutions/*/*.ipynb}; do
    name=$(basename "$(dirname "$notebook")")
    for device in gpu cpu; do
        visible=()
        [ "$device" = cpu ] && visible=(env CUDA_VISIBLE_DEVICES=)
        "${visible[@]}" "$python" -m autograder --course . grade "$notebook" -a "$name" --json "$out/$name.$device.json" >/dev/null 2>"$out/$name.$device.log"
        "$python" - "$out/$name.$device.json" "$name" "$device" <<'EOF'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except OSError:
    print(f"{sys.argv[2]:22} {sys.argv[3]:6} no result"); raise SystemExit
score = f"{r['score']:g}/{r['max_score']:g}" + (f"+{r['bonus']:g}" if r.get("bonus_max") else "")
bad = [f"{c['name']}:{c['status']}" for c in r["checks"] if c["status"] != "passed"]
print(f"{sys.argv[2]:22} {sys.argv[3]:6} {score:10} {r['timings'].get('total_s', 0):<8} {r['status']} {' '.join(bad)[:200]}")
EOF
    done
done
