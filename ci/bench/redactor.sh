#!/usr/bin/env bash
# Redactor throughput: `agent debug redact` with 50 secrets over ~1 GiB of build-like
# output, against `cat` of the same file, side by side in one run. Prints MB/s for each
# and the ratio (target: redact >= 0.5x cat). Not a test: numbers depend on the machine.
#
#   ci/bench/redactor.sh            # 1024 MiB, 3 rounds
#   BENCH_MB=256 ROUNDS=5 ci/bench/redactor.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

MB=${BENCH_MB:-1024}
ROUNDS=${ROUNDS:-3}
SECRETS=${BENCH_SECRETS:-50}

swift build -c release --product agent 2>&1 | tail -n 1
AGENT="$(swift build -c release --show-bin-path)/agent"

work=$(mktemp -d "${TMPDIR:-/tmp}/redactor-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 50 token-like secrets (20-40 characters), one per line.
for i in $(seq 1 "$SECRETS"); do
  len=$((20 + i % 21))
  printf 'tok%s_%s\n' "$i" "$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$len")"
done >"$work/secrets"

# 1 MiB of compiler-log-like lines; about one line in 200 carries a secret.
awk -v secrets="$work/secrets" 'BEGIN {
  srand(7)
  while ((getline s < secrets) > 0) tok[n++] = s
  split("Compiling Linking Emitting Building Checking Resolving", verb, " ")
  split("AgentCore Sandbox SandboxPolicy Crypto Logging ArgumentParser NIOCore", mod, " ")
  total = 0; line = 0
  while (total < 1048576) {
    line++
    r = rand()
    if (r < 0.005) {
      out = sprintf("+ curl -H \"Authorization: Bearer %s\" https://registry.example.com/v2/", tok[int(rand() * n)])
    } else if (r < 0.35) {
      out = sprintf("[%d/%d] %s %s %s%d.swift", line, 4096, verb[1 + int(rand() * 6)], mod[1 + int(rand() * 7)], "Source", int(rand() * 900))
    } else if (r < 0.6) {
      out = sprintf("cc -O2 -g -Wall -fPIC -I/usr/include/%s -DVERSION=%d -c src/%s/file%d.c -o build/obj/file%d.o",
                    mod[1 + int(rand() * 7)], int(rand() * 100), mod[1 + int(rand() * 7)], line, line)
    } else if (r < 0.8) {
      out = sprintf("/src/%s/Sources/%s.swift:%d:%d: warning: variable '\''x%d'\'' was never mutated; consider changing to '\''let'\'' constant",
                    mod[1 + int(rand() * 7)], mod[1 + int(rand() * 7)], int(rand() * 400), int(rand() * 80), line)
    } else {
      out = sprintf("ok %d - test_%s_%d (%.3fs) sha256:%08x%08x%08x%08x", line, mod[1 + int(rand() * 7)], line, rand(),
                    int(rand() * 4294967295), int(rand() * 4294967295), int(rand() * 4294967295), int(rand() * 4294967295))
    }
    print out
    total += length(out) + 1
  }
}' >"$work/block"

# The big input: the block repeated.
: >"$work/big"
for _ in $(seq 1 "$MB"); do cat "$work/block"; done >>"$work/big"
bytes=$(stat -c %s "$work/big")

# Sanity check: redacted output carries no secret, and the secrets were really in the input.
"$AGENT" debug redact --secrets-file "$work/secrets" <"$work/block" >"$work/block.redacted"
in_block=$(grep -c -F -f "$work/secrets" "$work/block" || true)
left=$(grep -c -F -f "$work/secrets" "$work/block.redacted" || true)
masked=$(grep -c -F '***' "$work/block.redacted" || true)
echo "input: $((bytes / 1048576)) MiB, $SECRETS secrets, $in_block lines with a secret per MiB; after redaction: $masked masked, $left leaked"
[ "$left" = 0 ] || { echo "FAIL: secrets left in the redacted output" >&2; exit 1; }

now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }
best_cat="" best_redact=""
cat "$work/big" >/dev/null   # warm the page cache
for round in $(seq 1 "$ROUNDS"); do
  t0=$(now); cat "$work/big" >/dev/null; t1=$(now)
  "$AGENT" debug redact --secrets-file "$work/secrets" <"$work/big" >/dev/null; t2=$(now)
  c=$(calc "$t1 - $t0"); r=$(calc "$t2 - $t1")
  printf 'round %d: cat %.3fs, redact %.3fs\n' "$round" "$c" "$r"
  best_cat=$(calc "(\"$best_cat\" == \"\" || $c < 0$best_cat) ? $c : 0$best_cat")
  best_redact=$(calc "(\"$best_redact\" == \"\" || $r < 0$best_redact) ? $r : 0$best_redact")
done

cat_rate=$(calc "$bytes / 1000000 / $best_cat")
redact_rate=$(calc "$bytes / 1000000 / $best_redact")
printf 'cat:    %8.0f MB/s (best of %d)\n' "$cat_rate" "$ROUNDS"
printf 'redact: %8.0f MB/s (best of %d)\n' "$redact_rate" "$ROUNDS"
printf 'ratio redact/cat: %.2f (target >= 0.50)\n' "$(calc "$redact_rate / $cat_rate")"
