"""Micro-benchmarks of the Python SDK (timeit): applying a cached credential to a request, per strategy and per
adapter, and a cold fetch (GET /v1/token over loopback HTTP, cache empty).

    /usr/bin/python3 sdks/python/bench/bench.py                  # against a loopback stand-in of Nexus
    NEXUS_URL=… NEXUS_API_KEY=… NEXUS_BENCH_CONNECTION=conn_… /usr/bin/python3 sdks/python/bench/bench.py
                                                                 # cold fetches against a real Nexus too
"""

import os
import platform
import statistics
import sys
import time
import timeit
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE.parent / "tests")]

import requests  # noqa: E402

from nexus_sdk import NexusClient  # noqa: E402
from nexus_sdk import requests as nexus_requests  # noqa: E402
from support import FakeServer, js  # noqa: E402
from test_apply import STRATEGIES  # noqa: E402


def per_call_us(fn, number):
    """Wall-clock microseconds per call, best of 5 runs (for calls that wait on the network)."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def cpu_us(fn, number):
    """CPU microseconds per call of this thread (time.thread_time), best of 10 runs: on a machine shared with
    other busy processes wall-clock time also counts the time slices they take, CPU time does not."""
    timer = timeit.Timer(fn, timer=time.thread_time)
    return min(timer.repeat(number=number, repeat=10)) / number * 1e6


def scenario_connection():
    """Under sdks/scenario/run.sh: a workspace key and an api_key connection made with the SDK."""
    import json

    text = Path(os.environ["NEXUS_SCENARIO"]).read_text(encoding="utf-8")
    data = json.loads(text.replace("{nexus}", os.environ["NEXUS_URL"])
                      .replace("{upstream}", os.environ["NEXUS_SCENARIO_UPSTREAM"]))
    admin = NexusClient(os.environ["NEXUS_URL"], os.environ["NEXUS_ADMIN_API_KEY"])
    key = admin.admin.create_api_key("bench", [data["workspace_id"]])
    provider = next(p for p in data["providers"] if p["name"] == "scenario-header-key")
    admin.admin.register_provider(provider["registration"])
    nexus = NexusClient(os.environ["NEXUS_URL"], key.api_key)
    start = nexus.request_connection(data["workspace_id"], provider["name"], data["return_url"])
    nexus.submit_credentials(start.connection_id, provider["credentials"])
    return nexus, start.connection_id


def main():
    server = FakeServer()
    server.route("GET", r"/v1/token/(\w+)", lambda s, m: js(200, {
        "strategy": STRATEGIES[m.group(1)][0], "credentials": STRATEGIES[m.group(1)][1](1), "expires_at": None}))
    client = NexusClient(server.url, "nxk_bench")
    rows = []
    url = "https://api.example.com/v1/items?page=2"
    for cid in STRATEGIES:
        client.credentials(cid)

        def apply_one(cid=cid):
            headers = {"Accept": "application/json"}
            client.credentials(cid).apply("GET", url, headers)

        rows.append(("cached credential, applied (%s)" % STRATEGIES[cid][0]["type"]
                     + (" in %s" % STRATEGIES[cid][0]["in"] if "in" in STRATEGIES[cid][0] else ""),
                     cpu_us(apply_one, 20000)))

    auth = nexus_requests.NexusAuth(client, "c_oauth")
    prepared = requests.Request("GET", url).prepare()
    rows.append(("requests.auth NexusAuth(request) (oauth2, cached)", cpu_us(lambda: auth(prepared), 20000)))

    def cold(cid="c_oauth"):
        client.invalidate(cid)
        client.credentials(cid)

    cold_us = [per_call_us(cold, 200) for _ in range(3)]
    rows.append(("cold fetch: GET /v1/token, loopback http.server stand-in (keep-alive)", statistics.median(cold_us)))

    real = []
    nexus, cid = None, os.environ.get("NEXUS_BENCH_CONNECTION")
    if cid:
        nexus = NexusClient()
    elif os.environ.get("NEXUS_SCENARIO"):
        nexus, cid = scenario_connection()
    if nexus is not None:

        def cold_real():
            nexus.invalidate(cid)
            nexus.credentials(cid)

        cold_real()
        real.append(("cold fetch: GET /v1/token, real Nexus (Release, SQLite, loopback, keep-alive)",
                     statistics.median(per_call_us(cold_real, 200) for _ in range(3))))
        def cold_new_connection():
            fresh = NexusClient(nexus.url, nexus._api_key)
            fresh.credentials(cid)
            fresh.close()

        real.append(("cold fetch, real Nexus, new client and TCP connection each time",
                     statistics.median(per_call_us(cold_new_connection, 100) for _ in range(3))))
        real.append(("cached credential from the real Nexus's answer, applied (api_key in header)",
                     cpu_us(lambda: nexus.credentials(cid).apply("GET", url, {}), 20000)))
    server.close()

    print("Python %s on %s, %s" % (platform.python_version(), platform.machine(), platform.platform(terse=True)))
    print()
    print("| Operation | µs per call |")
    # rows up to the cold fetches: CPU time of the calling thread; cold fetches: wall-clock time
    print("|---|---:|")
    for name, us in rows + real:
        print("| %s | %.1f |" % (name, us))


if __name__ == "__main__":
    main()
