#!/bin/sh
# The tool the demo image ships: greet NAME
echo "${GREETING:-hi}, ${1:-you}!"
