#!/usr/bin/env bash
# `make bench`: install what the benchmarks need, then run them; results under bench/out/.
#
#   BENCH_FILES=2000   CT slices of the deid corpus (512x512 16-bit, ~0.5 MB each)
#   BENCH_ROUNDS=1     how many times every deid contender runs (median reported)
#   BENCH_SCALING=1,2  extra `pacsguard deid -j N` rows
#   BENCH_PLANTED=100,10,0  corpora with identity in free text, code meanings and private
#                      blocks of that share of files, each run after the plain one
#   BENCH_CACHE=auto   auto | drop | warm (page cache before each run)
#   BENCH_TOOLS=       subset of the deid contenders, e.g. cp,gdcmanon,pacsguard
#   BENCH_ONLY=        subset of the benchmarks: deid,failclosed,pixels,tables,pack,scan,verify,gateway,guard
#   BENCH_PACK_ARGS="--size-mb 1000", BENCH_PIXELS_ARGS, BENCH_TABLES_ARGS, BENCH_SCAN_ARGS,
#   BENCH_GUARD_ARGS="--instances 300":
#                      extra arguments of the other benchmark scripts
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
BENCH_VENV=bench/.venv
OUT=bench/out
mkdir -p "$OUT"

# Debian packages: gdcmanon (libgdcm-tools), openssl for its certificate, /usr/bin/time,
# age (pack), nmap (scan).
bash scripts/install-system.sh bench/debian-packages.txt

# The competitors live in their own venv: they may pin their own pydicom.
stamp="$BENCH_VENV/.installed"
want=$(sha256sum bench/requirements-bench.txt | cut -d' ' -f1)
if [[ ! -x "$BENCH_VENV/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "bench venv: installing bench/requirements-bench.txt into $BENCH_VENV"
  base=$("$PY" -c 'import sys; print(sys._base_executable)' 2>/dev/null || command -v python3)
  "$base" -m venv "$BENCH_VENV"
  # (this machine's pip.conf names local indexes that may be absent: drop those warnings)
  "$BENCH_VENV/bin/python" -m pip install -q --disable-pip-version-check \
    -r bench/requirements-bench.txt 2>&1 | { grep -v 'is ignored: it is neither' || true; }
  echo "$want" >"$stamp"
fi

only=",${BENCH_ONLY:-deid,failclosed,pixels,tables,pack,scan,verify,gateway,guard,cluster},"
failed=()

wanted() { [[ "$only" == *",$1,"* ]]; }

if wanted deid; then
  echo "== deid: pacsguard deid vs gdcmanon, dicognito, pydicom/deid, dicom-anonymizer, pydicom, cp"
  if ! BENCH_PLANTED="${BENCH_PLANTED-100,10,0}" "$PY" bench/deid_bench.py --files "${BENCH_FILES:-2000}" --out "$OUT" \
    2>&1 | tee "$OUT/deid.txt"; then
    failed+=(deid)
  fi
fi

# The other benchmarks, each only where its script exists; stdout kept in bench/out/NAME.txt.
for name in failclosed pixels tables pack scan verify gateway guard cluster; do
  script="bench/${name}_bench.py"
  [[ -f "$script" ]] && wanted "$name" || continue
  var="BENCH_${name^^}_ARGS"
  default=""
  [[ "$name" == pack ]] && default="--size-mb 1000"
  [[ "$name" == tables ]] && default="--rows 1000000 --cols 200 --presidio-sample 300"
  # shellcheck disable=SC2206  # word splitting of the user's extra arguments is wanted
  args=(${!var:-$default})
  if "$PY" "$script" --help 2>/dev/null | grep -q -- '--workdir'; then
    args+=(--workdir "$OUT/${name}-work")
  fi
  echo "== $name: $script ${args[*]}"
  if ! "$PY" "$script" "${args[@]}" 2>&1 | tee "$OUT/$name.txt"; then
    failed+=("$name")
  fi
done

# The cluster's per-batch cost, piece by piece (docs/scale.md), on the cluster benchmark's corpus.
if wanted cluster; then
  echo "== cluster breakdown: bench/cluster_breakdown.py ${BENCH_BREAKDOWN_ARGS:-}"
  # shellcheck disable=SC2086  # word splitting of the user's extra arguments is wanted
  if ! "$PY" bench/cluster_breakdown.py --workdir "$OUT/cluster-work" ${BENCH_BREAKDOWN_ARGS:-} \
    2>&1 | tee "$OUT/cluster-breakdown.txt"; then
    failed+=(cluster-breakdown)
  fi
fi

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "benchmarks that failed: ${failed[*]} (see $OUT/)" >&2
  exit 1
fi
echo "results: $OUT/ (deid.md, deid.json, *.txt)"
