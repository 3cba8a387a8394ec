"""Notifications: event -> MQTT latency against a local mosquitto this script starts itself, and what a
notice costs the publishing (pipeline) thread.

latency: N event notices published on a HubBus (spread out, as events are) go through Notifications and paho to
mosquitto and back to a subscriber; the figure is receipt time minus ``EventNotice.at`` (target <= 0.2 s).

publish: the pipeline's cost of one ``HubBus.publish`` with the live-status subscriber only (the floor, same
run) against live status + Notifications (running, connected): the ratio is what notifications add per notice.

    python benchmarks/notify_latency.py [--events 2000] [--json benchmarks/results/notify_latency.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edge_media.config.notify import MqttConfig, NotifyConfig  # noqa: E402
from edge_media.notify import HubInfo, MqttNotifier, Notifications, NotifyPolicy, SourceInfo  # noqa: E402
from edge_media.service.bus import EventNotice, HubBus, event_id  # noqa: E402
from edge_media.service.live import LiveStatus  # noqa: E402


def start_broker(folder: Path) -> tuple[subprocess.Popen, int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start (apt-get install -y mosquitto)")


def notice(i: int, t0: float) -> EventNotice:
    return EventNotice("porch", "motion", "start", event_id("porch", "motion", t0 + i), 0.9, t0 + i)


def hub(port: int) -> tuple[Notifications, MqttNotifier]:
    cfg = MqttConfig(enabled=True, host="127.0.0.1", port=port, topic_prefix="bench", client_id="bench-hub")
    notifier = MqttNotifier(cfg, HubInfo("edge_media_bench", "bench", "0"),
                            [SourceInfo("porch", "u1", motion=True, audio=False)], [])
    notes = Notifications(NotifyPolicy.from_config(NotifyConfig()), mqtt=notifier)
    notes.start()
    if not notifier.connected.wait(10):
        raise SystemExit("hub did not connect to mosquitto")
    return notes, notifier


def bench_latency(port: int, n: int) -> dict:
    arrivals: dict[str, float] = {}
    done = threading.Event()

    def on_message(client, userdata, msg) -> None:
        arrivals[json.loads(msg.payload)["event_id"]] = time.time()
        if len(arrivals) == n:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-listener")
    subscribed = threading.Event()
    sub.on_message, sub.on_subscribe = on_message, lambda *a: subscribed.set()
    sub.connect("127.0.0.1", port)
    sub.subscribe("bench/events", qos=1)
    sub.loop_start()
    subscribed.wait(10)
    notes, _ = hub(port)
    bus = HubBus()
    bus.subscribe(notes.on_notice)
    sent: dict[str, float] = {}
    t0 = time.time()
    for i in range(n):
        note = notice(i, t0)
        sent[note.event_id] = note.at
        bus.publish(note)
        time.sleep(0.002)
    done.wait(30)
    notes.stop()
    sub.disconnect()
    sub.loop_stop()
    lat = sorted(arrivals[k] - sent[k] for k in arrivals)
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
    return {"events": n, "received": len(lat), "p50_ms": pct(0.5), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "max_ms": lat[-1] * 1000, "mean_ms": statistics.fmean(lat) * 1000, "target_ms": 200}


def bench_publish(port: int, n: int) -> dict:
    live = LiveStatus({"porch": "camera"})
    floor_bus = HubBus()
    floor_bus.subscribe(live.on_notice)
    notes, _ = hub(port)
    full_bus = HubBus()
    full_bus.subscribe(live.on_notice)
    full_bus.subscribe(notes.on_notice)
    t0 = time.time()
    notices = [notice(i, t0) for i in range(n)]
    timings = {}
    for name, bus in (("floor", floor_bus), ("with_notifications", full_bus)):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for note in notices:
                bus.publish(note)
            best = min(best, time.perf_counter() - start)
            time.sleep(0.5)  # let the dispatcher catch up between rounds
        timings[name] = best / n * 1e6
    notes.stop()
    return {"notices": n, "floor_us": timings["floor"], "with_notifications_us": timings["with_notifications"],
            "ratio": timings["with_notifications"] / timings["floor"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "notify_latency.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_broker(Path(tmp))
        try:
            latency = bench_latency(port, args.events)
            publish = bench_publish(port, 3000)
        finally:
            proc.terminate()
            proc.wait(5)
    print(f"event -> MQTT latency over {latency['received']}/{latency['events']} events: "
          f"p50 {latency['p50_ms']:.2f} ms  p95 {latency['p95_ms']:.2f} ms  p99 {latency['p99_ms']:.2f} ms  "
          f"max {latency['max_ms']:.2f} ms  (target {latency['target_ms']} ms)")
    print(f"HubBus.publish per notice: {publish['floor_us']:.2f} us (live status only) -> "
          f"{publish['with_notifications_us']:.2f} us with notifications ({publish['ratio']:.2f}x)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"broker": "mosquitto (loopback)", "latency": latency, "publish": publish},
                                    indent=2))
    return 0 if latency["received"] == latency["events"] and latency["p95_ms"] <= latency["target_ms"] else 1


if __name__ == "__main__":
    sys.exit(main())
