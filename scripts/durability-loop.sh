#!/usr/bin/env bash
# durability-loop.sh runs the power-loss and kill -9 suites N times (default
# 200) and prints how many runs failed. Not run by CI: it takes long and
# wants a machine to itself.
#
#   scripts/durability-loop.sh [N]
#
# Environment:
#   SUITES   which suites to run, any of: powerloss kill9 poker
#            (default "powerloss kill9 poker")
#   RACE=1   build the test binaries with -race
#   KEEP=dir keep the output of failed runs in dir (default ./durability-failures)
#
# Suites:
#   powerloss  root package: TestPowerLossCycles, TestPowerLossRecoversExactState,
#              TestCheckpointOrderEvictionPowerLoss, TestSlowCheckpointDoesNotBlockTurns
#              (faultfs power cuts, in process, ~2s a run)
#   kill9      root package: TestKill9UnderLoad (SIGKILL of a child process, ~20s a run)
#   poker      cmd/poker: TestCrashRecovery (SIGKILL of the real server, ~15s a run)
set -u
cd "$(dirname "$0")/.."
n=${1:-200}
suites=${SUITES:-powerloss kill9 poker}
keep=${KEEP:-./durability-failures}
race=()
[ "${RACE:-0}" = 1 ] && race=(-race)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go test "${race[@]}" -c -o "$bin/root.test" . || exit 2
go test "${race[@]}" -c -o "$bin/poker.test" ./cmd/poker || exit 2

declare -A pattern=(
	[powerloss]='^(TestPowerLossCycles|TestPowerLossRecoversExactState|TestCheckpointOrderEvictionPowerLoss|TestSlowCheckpointDoesNotBlockTurns)$'
	[kill9]='^TestKill9UnderLoad$'
	[poker]='^TestCrashRecovery$'
)
declare -A binary=([powerloss]=root [kill9]=root [poker]=poker)
declare -A dir=([powerloss]=. [kill9]=. [poker]=./cmd/poker)
declare -A runs fails
for s in $suites; do runs[$s]=0; fails[$s]=0; done

for i in $(seq 1 "$n"); do
	for s in $suites; do
		out=$(cd "${dir[$s]}" && "$bin/${binary[$s]}.test" -test.run "${pattern[$s]}" -test.count=1 -test.timeout=10m 2>&1)
		rc=$?
		runs[$s]=$((runs[$s] + 1))
		if [ $rc -ne 0 ]; then
			fails[$s]=$((fails[$s] + 1))
			mkdir -p "$keep"
			printf '%s\n' "$out" >"$keep/$s-run$i.log"
			echo "run $i $s: FAIL (log in $keep/$s-run$i.log)"
		fi
	done
	if [ $((i % 10)) -eq 0 ]; then
		line="after $i:"
		for s in $suites; do line="$line $s ${fails[$s]}/${runs[$s]} failed;"; done
		echo "$line"
	fi
done

total=0
for s in $suites; do
	echo "$s: ${runs[$s]} runs, ${fails[$s]} failures"
	total=$((total + fails[$s]))
done
echo "failures: $total"
[ "$total" -eq 0 ]
