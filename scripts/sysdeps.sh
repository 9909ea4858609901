#!/usr/bin/env bash
# Check the system packages in scripts/apt-packages.txt; install the missing ones when root, otherwise print
# the one apt-get line to run and fail (with --optional: warn and go on; the local stack leaves out what is
# missing and says so).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
missing=()
while read -r pkg cmd; do
  [[ -z "${pkg}" || "${pkg}" == \#* ]] && continue
  command -v "${cmd}" >/dev/null 2>&1 || missing+=("${pkg}")
done < "${here}/apt-packages.txt"
[[ ${#missing[@]} -eq 0 ]] && exit 0
line="apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && ${line} >/dev/null
elif [[ "${1:-}" == "--optional" ]]; then
  echo "warning: missing system packages (the stack leaves their parts out); to add them: sudo ${line}" >&2
else
  echo "missing system packages; run:  sudo ${line}" >&2
  exit 1
fi
