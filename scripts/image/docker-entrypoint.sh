#!/bin/sh
# The official Node.js images' entry point: arguments that are options or a script (not a
# command on PATH) run under node; anything else runs as given.
set -e
if [ "${1#-}" != "$1" ] || [ -z "$(command -v "$1" || true)" ] || { [ -f "$1" ] && ! [ -x "$1" ]; }; then
  set -- node "$@"
fi
exec "$@"
