#!/usr/bin/env bash
# docker-compose.yml's services without Docker, on loopback: Redis (append-only file), the
# action server, the assistant (2 workers on deploy/endpoints.yml and deploy/credentials.yml)
# and the UI, each started with the command its service runs; then a short conversation,
# the tracker read back from Redis, and every process stopped.
#   deploy/rehearse.sh                  # needs a trained demo in models/ and redis-server
#   PY=python MODELS=/path/to/models deploy/rehearse.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODELS=$(realpath "${MODELS:-models}")
WORK=$(mktemp -d)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
RP=$(free_port); AP=$(free_port); PP=$(free_port); UP=$(free_port)
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 180); do curl -sf -m 2 "$1" >/dev/null && return 0; sleep 1; done; return 1; }

sed -e "s/port: 6379/port: $RP/" -e "s/:5055/:$AP/" deploy/endpoints.yml > "$WORK/endpoints.yml"
redis-server --bind 127.0.0.1 --port "$RP" --appendonly yes --dir "$WORK" > "$WORK/redis.log" 2>&1 &
PIDS+=($!)
XINGKONG_BOOKINGS_DB="$WORK/bookings.sqlite" XINGKONG_KNOWLEDGE_DIR="$MODELS/knowledge" \
  "$PY" -m bot run actions --port "$AP" > "$WORK/actions.log" 2>&1 &
PIDS+=($!)
REDIS_HOST=127.0.0.1 ACTION_SERVER_HOST=127.0.0.1 XINGKONG_AUTH_TOKEN=rehearsal \
  XINGKONG_WORKERS=2 "$PY" -m bot run --host 127.0.0.1 --port "$PP" --enable-api \
  --endpoints "$WORK/endpoints.yml" --credentials deploy/credentials.yml -m "$MODELS" \
  > "$WORK/assistant.log" 2>&1 &
PIDS+=($!)
XINGKONG_TOKEN=rehearsal "$PY" -m ui --server "http://127.0.0.1:$PP" --host 127.0.0.1 \
  --port "$UP" > "$WORK/ui.log" 2>&1 &
PIDS+=($!)

wait_for "http://127.0.0.1:$AP/health" || { cat "$WORK/actions.log"; exit 1; }
wait_for "http://127.0.0.1:$PP/version" || { cat "$WORK/assistant.log"; exit 1; }
for message in "hi" "I'd like to book a room in Lisbon" "is breakfast included at Starlight Rome?"; do
  echo "> $message"
  curl -s -m 60 "http://127.0.0.1:$PP/webhooks/rest/webhook" \
    -d "{\"sender\": \"rehearsal\", \"message\": \"$message\"}" \
    | "$PY" -c 'import json, sys; [print("  " + m.get("text", "")[:100]) for m in json.load(sys.stdin)]'
done
echo "stored in Redis: $(redis-cli -p "$RP" --raw llen starlight:tracker:rehearsal) events"
wait_for "http://127.0.0.1:$UP/" && echo "UI answers on port $UP"
echo "rehearsal passed"
