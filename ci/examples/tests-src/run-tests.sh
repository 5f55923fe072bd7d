#!/bin/sh
# A tiny "test suite": runs three checks and writes a JUnit report to $REPORT_DIR.
set -u
dir=${REPORT_DIR:-/tmp/reports}
mkdir -p "$dir"
failures=0
check() { # name, command...
  name=$1; shift
  if "$@" >/dev/null 2>&1; then
    echo "  <testcase classname=\"examples.shell\" name=\"$name\" time=\"0.001\"/>"
  else
    failures=$((failures + 1))
    echo "  <testcase classname=\"examples.shell\" name=\"$name\" time=\"0.001\"><failure message=\"$name failed\"/></testcase>"
  fi
}
cases=$(
  check "sh-runs" true
  check "workspace-is-readonly" sh -c '! touch /workspace/.probe'
  check "tmp-is-writable" sh -c 'echo ok > /tmp/probe'
)
{
  echo '<?xml version="1.0" encoding="UTF-8"?>'
  echo "<testsuite name=\"examples\" tests=\"3\" failures=\"$(printf '%s\n' "$cases" | grep -c '<failure')\" errors=\"0\" skipped=\"0\">"
  printf '%s\n' "$cases"
  echo '</testsuite>'
} > "$dir/junit.xml"
cat "$dir/junit.xml"
