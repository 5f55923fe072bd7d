#!/bin/sh
# Reads what greet.sh made: step 2 of hello.json ("check").
set -eu
test -s out/greeting.txt || { echo "out/greeting.txt is missing: did the build step run?" >&2; exit 1; }
cat out/greeting.txt
wc -c < out/greeting.txt
