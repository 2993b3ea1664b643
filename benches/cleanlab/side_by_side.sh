#!/usr/bin/env bash
# Side by side on the same Parquet files: vigil's label-noise check (PSN006 alone, whole
# process) and cleanlab with a cross-validated logistic regression (whole process, imports
# included). Not part of CI: it installs cleanlab, scikit-learn, pandas and pyarrow from PyPI
# into a virtual environment (VIGIL_CLEANLAB_VENV, default ~/.cache/vigil-cleanlab-venv).
#
# Usage: benches/cleanlab/side_by_side.sh FILE.parquet...
# The poisoning bench leaves W1 files to use: `VIGIL_BENCH_DIR=/tmp/pb cargo bench --bench
# poisoning`, then `benches/cleanlab/side_by_side.sh /tmp/pb/w1-*-poisoned.parquet`.
set -euo pipefail
[ $# -ge 1 ] || { sed -n 2,10p "$0"; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${VIGIL_CLEANLAB_VENV:-$HOME/.cache/vigil-cleanlab-venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q cleanlab==2.9.0 scikit-learn==1.9.1 pandas==3.1.1 pyarrow==26.0.1
fi
(cd "$root" && cargo build --release -q)
vigil="${CARGO_TARGET_DIR:-$root/target}/release/vigil"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for data in "$@"; do
    "$vigil" init "$data" --label label --id id -q --force -o "$work/vigil.toml"
    # PSN006 alone: every other dataset check switched off.
    for code in $("$vigil" rules | awk '{print $1}' | grep -E '^(SCH|OUT|DRF|PSN)' | grep -v '^PSN006$'); do
        printf '\n[checks.%s]\nenabled = false\n' "$code" >> "$work/vigil.toml"
    done
    /usr/bin/time -f "%e %M" -o "$work/time" "$vigil" check "$data" -p "$work/vigil.toml" -q \
        -f json -o "$work/report.json" --exit-zero
    read -r secs kib < "$work/time"
    flagged=$("$venv/bin/python" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sum(f["rows"]["count"] for f in r["findings"] if f["code"]=="PSN006"))' "$work/report.json")
    echo "$(basename "$data"): vigil PSN006 ${secs}s (whole process), peak RSS $((kib / 1024)) MiB, $flagged rows flagged"
    /usr/bin/time -f "%e %M" -o "$work/time" "$venv/bin/python" "$here/label_noise.py" "$data"
    read -r secs kib < "$work/time"
    echo "$(basename "$data"): cleanlab ${secs}s (whole process), peak RSS $((kib / 1024)) MiB"
done
