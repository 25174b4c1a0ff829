"""Prints one line per probe of an `infra.monitor.run` result read from stdin."""
import json
import sys

run = json.load(sys.stdin)
for result in run["results"]:
    error = result.get("error") or {}
    seen = result.get("status_code") or error.get("category", "?")
    print(
        "  {:<16} {:<9} {:<5} {:>5} ms  -> {}".format(
            result["service"], result["outcome"], str(seen), result["response_ms"], result["status"] or "unchecked"
        )
    )
for transition in run["transitions"]:
    print("  transition: {}".format(json.dumps(transition, sort_keys=True)))
