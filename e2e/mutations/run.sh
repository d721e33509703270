#!/usr/bin/env bash
# Breaks one safety mechanism at a time and runs the short fault campaign against the broken
# copy: every patch in this folder must make the campaign fail. A patch whose mechanism a
# narrower test targets names it on a line of its header, before the diff, as
# "wxhub-test: <go test arguments>" (e.g. "./server -run TestX"); that test must fail
# instead. Each run happens in a scratch copy of the working tree, so the checkout is never
# touched.
#
#   e2e/mutations/run.sh                   every patch
#   e2e/mutations/run.sh claim-fence ...   the named ones
#
# Extra arguments for the campaign go in E2E_ARGS (e.g. E2E_ARGS="-e2e.accounts 400").
# Each campaign's output is kept as <name>.log in the folder named by MUTATION_LOGS (a
# temporary one by default, printed at the end). Exits 1 if any mutation was not caught.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
logs=${MUTATION_LOGS:-$(mktemp -d -t wxhub-mutations-XXXXXX)}
mkdir -p "$logs"
scratch=$(mktemp -d -t wxhub-mutant-XXXXXX)
trap 'rm -rf "$scratch"' EXIT

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for p in e2e/mutations/*.patch; do names+=("$(basename "$p" .patch)"); done
fi

missed=0
for name in "${names[@]}"; do
  patch="$root/e2e/mutations/$name.patch"
  [ -f "$patch" ] || { echo "$name: no such patch ($patch)"; exit 2; }
  copy="$scratch/$name"
  mkdir -p "$copy"
  git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$copy"
  (cd "$copy" && patch -s -p1 < "$patch")
  target=$(sed -n '/^--- /q; s/^wxhub-test: //p' "$patch")
  start=$(date +%s)
  if [ -n "$target" ]; then
    # shellcheck disable=SC2086 # the header's arguments are a list
    run=(go test -count=1 -v -timeout 30m $target)
    what="test"
  else
    # shellcheck disable=SC2086 # E2E_ARGS is a list of flags
    run=(go test -count=1 -v -timeout 30m -run TestCampaign ./e2e ${E2E_ARGS:-})
    what="campaign"
  fi
  if (cd "$copy" && "${run[@]}") > "$logs/$name.log" 2>&1; then
    echo "$name: NOT CAUGHT: the $what passed ($(( $(date +%s) - start )) s; log $logs/$name.log)"
    missed=1
  else
    first=$(grep -m1 -E '^  - |did not bite|_test\.go:[0-9]+: |FAIL' "$logs/$name.log" || true)
    echo "$name: caught ($(( $(date +%s) - start )) s): ${first#  - }"
  fi
  rm -rf "$copy"
done
echo "logs in $logs"
exit $missed
