#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a bounded time each, one after the other, and prints the
# executions, coverage and result of each. Not part of CI: see docs/fuzzing.md.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     SECONDS per target, default 600
#
# Environment:
#   RSS_LIMIT_MB   libFuzzer's memory limit per target (default 2048); going over it is reported as a crash
#   TIMEOUT        seconds one input may take before libFuzzer reports it as a hang (default 10)
#   NICE           niceness of the fuzzer (default 19: the machine is shared)
#
# Needs cargo-fuzz (`cargo install --locked cargo-fuzz`). It builds with the stable toolchain, whose nightly-only
# flags (-Zsanitizer=address) RUSTC_BOOTSTRAP=1 unlocks. Each target starts from the committed seeds
# (fuzz/seeds/TARGET) plus what earlier runs found (fuzz/corpus/TARGET, not committed); crashes land in
# fuzz/artifacts/TARGET and logs in fuzz/logs/TARGET.log. One job per target (-jobs is not used).
set -uo pipefail
cd "$(dirname "$0")"

SECONDS_PER_TARGET="${1:-600}"
shift || true
ALL_TARGETS=(server_name well_known_body canonical_json key_document cert_facts target_file config_yaml)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
RSS_LIMIT_MB="${RSS_LIMIT_MB:-2048}"
TIMEOUT="${TIMEOUT:-10}"
NICE="${NICE:-19}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz/run.sh: cargo-fuzz is not installed; run: cargo install --locked cargo-fuzz" >&2
  exit 2
fi
export RUSTC_BOOTSTRAP=1

dict_for() {
  case "$1" in
    well_known_body | canonical_json | key_document) echo "dicts/json.dict" ;;
    target_file | config_yaml) echo "dicts/yaml.dict" ;;
    server_name) echo "dicts/server_name.dict" ;;
    *) echo "" ;;
  esac
}

# Build everything first, so that the time limit is spent fuzzing.
mkdir -p logs
echo "== building the fuzz targets (log: fuzz/logs/build.log)"
nice -n "$NICE" cargo +stable fuzz build >logs/build.log 2>&1 || {
  tail -n 30 logs/build.log >&2
  echo "fuzz/run.sh: build failed" >&2
  exit 2
}

failed=()
summary=()
for target in "${TARGETS[@]}"; do
  corpus="corpus/$target"
  mkdir -p "$corpus" "artifacts/$target"
  args=(-max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb="$RSS_LIMIT_MB" -timeout="$TIMEOUT"
    -print_final_stats=1)
  dict="$(dict_for "$target")"
  [ -n "$dict" ] && args+=(-dict="$dict")
  log="logs/$target.log"
  echo "== $target for ${SECONDS_PER_TARGET}s (log: fuzz/$log)"
  start=$(date +%s)
  nice -n "$NICE" cargo +stable fuzz run "$target" "$corpus" "seeds/$target" -- "${args[@]}" >"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))
  # libFuzzer's last status line ("#N DONE cov: C ft: F corp: U/S ...") and its final statistics.
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  cov=$(echo "$last" | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+')
  # The instrumented edges of the binary (what `cov` counts out of).
  edges=$(sed -n 's/.*(\([0-9]*\) inline 8-bit counters).*/\1/p' "$log" | head -n 1)
  ft=$(echo "$last" | grep -oE 'ft: [0-9]+' | grep -oE '[0-9]+')
  corp=$(echo "$last" | grep -oE 'corp: [0-9]+' | grep -oE '[0-9]+')
  if [ "$rc" -eq 0 ]; then
    result="ok"
  else
    result="CRASH (exit $rc; see fuzz/$log and fuzz/artifacts/$target)"
    failed+=("$target")
  fi
  line=$(printf '%-16s %6ss  execs %-11s %6s/s  cov %-5s of %-6s ft %-6s corpus %-6s peak RSS %s MB  %s' \
    "$target" "$took" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${edges:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" \
    "$result")
  echo "$line"
  summary+=("$line")
done

echo
echo "== summary (${SECONDS_PER_TARGET}s per target, rss_limit_mb=$RSS_LIMIT_MB, timeout=${TIMEOUT}s)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "crashed: ${failed[*]}" >&2
  exit 1
fi
