#!/bin/sh
# The demo job's test step: checks the tool the image ships and writes a JUnit report.
mkdir -p "$REPORT_DIR"
out=$(greet ci)
if [ "$out" = "hello, ci!" ]; then result='<testcase classname="greet" name="greets"/>'; else
  result="<testcase classname=\"greet\" name=\"greets\"><failure message=\"got $out\"/></testcase>"; fi
cat > "$REPORT_DIR/greet.xml" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="greet" tests="1">$result</testsuite>
XML
echo "greet says: $out"
