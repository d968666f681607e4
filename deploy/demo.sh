#!/usr/bin/env bash
# The main job on the embedded default, end to end (what `make demo` runs):
# local broker and topics up, simulated history, a model trained if absent,
# the worker consuming transactions and emitting decisions, a live simulated
# stream, and the decisions shown as they come. Finishes with a replay report.
#
# Environment: DEMO_DIR (data, default data/demo), DEMO_MODEL (artifacts/model),
# DEMO_RATE (tx/s offered, default 2000), DEMO_SECONDS (live view, default 45),
# DEMO_PORT (worker /health and /metrics, default 8000).
set -euo pipefail
cd "$(dirname "$0")/.."
RF=.venv/bin/riskflow
DEMO_DIR=${DEMO_DIR:-data/demo}
MODEL=${DEMO_MODEL:-artifacts/model}
RATE=${DEMO_RATE:-2000}
SECONDS_LIVE=${DEMO_SECONDS:-45}
PORT=${DEMO_PORT:-8000}
export RISKFLOW_MODEL__PATH=$MODEL
export RISKFLOW_STREAM__METRICS_PORT=$PORT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "topics"
$RF topics create

if [[ ! -f $DEMO_DIR/manifest.json ]]; then
  say "simulating a payment history into $DEMO_DIR"
  $RF simulate --preset demo --out "$DEMO_DIR"
fi
if [[ ! -f $MODEL/manifest.json ]]; then
  say "training the LightGBM + MLP ensemble into $MODEL (once)"
  $RF train --data "$DEMO_DIR" --out "$MODEL"
fi

say "starting the worker (health and metrics on :$PORT)"
mkdir -p state
$RF worker --engine bulk --loglevel warning > state/demo-worker.log 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null; wait $WORKER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 $WORKER 2>/dev/null; then echo "worker exited; see state/demo-worker.log" >&2; tail -20 state/demo-worker.log >&2; exit 1; fi
  sleep 1
done
curl -fs "http://127.0.0.1:$PORT/health" || { echo "worker not ready after 120 s; see state/demo-worker.log" >&2; exit 1; }

say "live: $RATE tx/s of simulated payments (with their chargebacks) -> decisions"
$RF produce --data "$DEMO_DIR" --with-labels --rate "$RATE" --no-progress > state/demo-produce.log 2>&1 &
PRODUCER=$!
$RF watch --seconds "$SECONDS_LIVE" || true
kill $PRODUCER 2>/dev/null || true
wait $PRODUCER 2>/dev/null || true
echo
curl -fs "http://127.0.0.1:$PORT/metrics" | grep -E '^riskflow_(consumed|decisions|dead_letter|fallback)[a-z_]*_total' | head -12 || true

say "offline replay of the same history (backtest report)"
$RF replay --data "$DEMO_DIR" --model "$MODEL" --out out/demo
echo "open out/demo/report.html"
