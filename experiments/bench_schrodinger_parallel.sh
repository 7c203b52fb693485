#!/usr/bin/env bash
# Run experiments/bench_schrodinger.py as independent parts in parallel (one thread each) and merge them into
# experiments/results/schrodinger.{json,md,png}. Parts: Light SB per (D, ε) with D in {2, 16, 64, 128}; SB-CFM,
# DSBM and OT-FM per (D, ε) with D in {2, 16, 64}; the Gaussian checks + 2-D picture; the ε = 0.1, D = 16 Light SB
# ablation (benchmark construction x training batches). PYTHON defaults to .venv/bin/python; LIMIT (s) bounds
# every part (a part that does not finish is left out of the merge and named in the log).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
LIMIT=${LIMIT:-3000}
B=experiments/bench_schrodinger.py
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
parts=(); abl=()
run() { local name=$1; shift; timeout "$LIMIT" "$PY" $B --no-extras --out "$name" "$@" > "/tmp/$name.log" 2>&1 \
        || echo "part $name failed or ran past ${LIMIT}s" >&2; }
for e in 0.1 1.0 10.0; do
  for d in 64 128 16 2; do run sbp_lsb_d${d}_e$e --methods light_sb --dims $d --eps $e --em-dims 2 16 & parts+=(sbp_lsb_d${d}_e$e); done
  for d in 64 16 2; do for m in sbcfm dsbm otfm; do
    run sbp_${m}_d${d}_e$e --methods $m --dims $d --eps $e & parts+=(sbp_${m}_d${d}_e$e); done; done
done
timeout "$LIMIT" "$PY" $B --extras-only --out sbp_extras > /tmp/sbp_extras.log 2>&1 & parts+=(sbp_extras)
for c in "light_sb pool" "light_sb fresh" "gushchin pool"; do set -- $c
  run sbp_abl_$1_$2 --methods light_sb --dims 16 --eps 0.1 --em-dims 0 --construction $1 --lsb-data $2 & abl+=(sbp_abl_$1_$2)
done
wait
ok=(); for p in "${parts[@]}"; do [ -f experiments/results/$p.json ] && ok+=($p) || echo "missing part $p" >&2; done
okabl=(); for p in "${abl[@]}"; do [ -f experiments/results/$p.json ] && okabl+=($p); done
"$PY" $B --merge "${ok[@]}" --ablation "${okabl[@]}" --out schrodinger \
  --where "${WHERE:-CPU, one thread per part, parts in parallel}" --command "experiments/bench_schrodinger_parallel.sh"
