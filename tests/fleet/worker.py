"""Fleet worker (Python): hammers one capability through the shared Redis store.

Usage: worker.py CONFIG_FILE START_MS STOP_MS. Waits until the engine's clock (the Redis
server's) reads START_MS, then acquires and completes as fast as the quota allows until STOP_MS,
sleeping the predicted wait when refused. Prints one JSON line: admitted count and the engine's
clock at the end (an upper bound of every time it gave the store).
"""

import json
import sys
import time

import ratewise

config_file, start_ms, stop_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
engine = ratewise.Engine(open(config_file).read())
while engine.now_ms() < start_ms:
    time.sleep(min(0.05, (start_ms - engine.now_ms()) / 1000))
admitted = 0
while engine.now_ms() < stop_ms:
    try:
        permit = engine.acquire("chat")
    except ratewise.NoAvailableProviderError as e:
        time.sleep(max(1, min(e.retry_after_ms or 1, 50)) / 1000)
        continue
    admitted += 1
    permit.complete("success", latency_ms=1)
print(json.dumps({"lang": "python", "admitted": admitted, "end_ms": engine.now_ms(),
                  "mode": engine.snapshot()["store"]["mode"]}))
