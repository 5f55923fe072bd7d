#!/bin/sh
# Writes a greeting into out/: step 1 of hello.json ("build").
set -eu
mkdir -p out
name=${GREETING_NAME:-world}
printf 'hello, %s\n' "$name" > out/greeting.txt
echo "built out/greeting.txt"
