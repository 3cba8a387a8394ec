"""Does the API slow the pipeline? The hub's CPU with the API off vs. up and polled, in one run.

A child process runs the real Service on generated cameras (each a looping, real-time 640x360 15 fps H.264 + AAC
file with someone walking through, so clips keep being recorded and the event list keeps growing). The parent
switches the child's API off and on in alternating phases (off, on, off, on, ..., off) and, while it is on, runs
10 clients (threads of the parent, i.e. another process) that each poll ``/api/v1/events`` and
``/api/v1/cameras`` once a second, as review pages would. The child's CPU seconds per wall second come from
``/proc/<pid>/stat`` at each phase's edges. Each "on" phase is compared with the mean of the two "off" phases
around it (which cancels slow drift: more clips indexed, page cache, thermal); the ratio reported is the median
of those (target <= 1.03).

    python benchmarks/api_load.py [--cameras 4] [--phase-s 20] [--pairs 3] [--clients 10]
                                  [--json benchmarks/results/api_load.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

import httpx  # noqa: E402

from edge_media.tools.samples import MovingBox, VideoSpec, make_video  # noqa: E402

SETTLE_S = 2.0  # after a switch, before a phase is measured (server start/stop, connection set-up)
WARMUP_S = 15.0  # cameras open, models warm, first clips
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- the child: the hub, with an API that can be switched on and off ----------------------------------------------

API_THREADS = ("api", "AnyIO worker thread")  # uvicorn's loop thread (ApiServer) and the sync routes' workers


class ThreadCpu:
    """CPU seconds per thread group of this process: "api" (the API's threads), "hub" (every other thread,
    native ones too: FFmpeg decoders, onnxruntime) and "bench" (this sampler). Sampled from /proc/self/task twice a
    second, keeping each thread's last value, so a thread that ends (an API worker, the stopped server) still
    counts up to its last sample."""

    def __init__(self) -> None:
        self.last: dict[int, tuple[str, float]] = {}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            self.sample()
            time.sleep(0.5)

    def sample(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate()}
        for task in Path("/proc/self/task").iterdir():
            tid = int(task.name)
            try:
                cpu = cpu_seconds_of(task / "stat")
            except OSError:  # ended meanwhile
                continue
            name = names.get(tid, "")
            group = ("bench" if tid == self.thread.native_id else
                     "api" if name.startswith(API_THREADS) else "hub")
            with self.lock:
                group = self.last.get(tid, (group, 0.0))[0] if not name else group  # native: keep first group
                self.last[tid] = (group, cpu)

    def totals(self) -> dict[str, float]:
        self.sample()
        out = {"api": 0.0, "hub": 0.0, "bench": 0.0}
        with self.lock:
            for group, cpu in self.last.values():
                out[group] += cpu
        return out


def child(config_path: Path) -> int:
    """Reads "on" / "off" / "cpu" / "quit" lines on stdin; answers "ok" or, to "cpu", the thread groups' CPU
    seconds as JSON (and first "ready <port> <token>")."""
    from edge_media.access import UserStore
    from edge_media.api import ApiServer, create_app
    from edge_media.config import load_config
    from edge_media.service.hub import Service

    config = load_config(config_path)
    service = Service(config)
    token = UserStore(service.ctx.db).add("bench", "owner", owner="owner")[1]
    app = create_app(service)
    threads = ThreadCpu()
    service.start()
    server: ApiServer | None = None
    print(f"ready {config.api.port} {token}", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "on" and server is None:
            server = ApiServer(app, config.api.host, config.api.port)
            server.start()
        elif cmd == "off" and server is not None:
            server.stop()
            server = None
        elif cmd == "cpu":
            print(json.dumps(threads.totals()), flush=True)
            continue
        elif cmd == "quit":
            break
        print("ok", flush=True)
    if server is not None:
        server.stop()
    service.stop(upload_drain_s=5)
    service.close()
    return 0


# ---- the parent: phases, clients, CPU accounting ---------------------------------------------------------------

def make_config(folder: Path, video: Path, cameras: int, port: int) -> Path:
    cams = "".join(f'[[cameras]]\nname = "cam{i}"\nrecord_url = "{video}"\nrealtime = true\nloop = true\n'
                   for i in range(cameras))
    path = folder / "hub.toml"
    path.write_text(f'[service]\ndata_dir = "{folder / "data"}"\nlog_level = "WARNING"\n'
                    f"[recording]\npre_roll_s = 2.0\npost_roll_s = 2.0\n"
                    f'[api]\nhost = "127.0.0.1"\nport = {port}\n{cams}')
    return path


def cpu_seconds_of(stat_file: Path) -> float:
    """utime + stime (fields 14 and 15) of a /proc stat file: a process's (all its threads) or one thread's."""
    stat = stat_file.read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class Clients:
    """``n`` pollers, each GETting /events and /cameras once a second until stopped."""

    url: str
    token: str
    n: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    items: int = 0

    def run(self, stop: threading.Event) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._poll, args=(i, stop), daemon=True) for i in range(self.n)]
        for t in threads:
            t.start()
        return threads

    def _poll(self, i: int, stop: threading.Event) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=10.0) as client:
            next_at = time.monotonic() + i / self.n  # spread over the second, as independent pages would be
            while not stop.wait(max(0.0, next_at - time.monotonic())):
                next_at += 1.0
                for path in ("/api/v1/events?limit=100", "/api/v1/cameras"):
                    t0 = time.perf_counter()
                    try:
                        r = client.get(path)
                        ok = r.status_code == 200
                        if ok and path.startswith("/api/v1/events"):
                            self.items += len(r.json()["items"])
                    except httpx.HTTPError:
                        ok = False
                    self.latencies.append(time.perf_counter() - t0)
                    self.errors += not ok


class Hub:
    def __init__(self, config: Path, cpu: int | None) -> None:
        cmd = [sys.executable, __file__, "--child", str(config)]
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu), *cmd]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise SystemExit(f"the hub did not start: {ready}")
        self.port, self.token = int(ready[1]), ready[2]

    def send(self, cmd: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        if cmd == "quit":
            return ""
        answer = self.proc.stdout.readline().strip()
        if cmd != "cpu" and answer != "ok":
            raise SystemExit(f"the hub answered {answer!r} to {cmd!r}")
        return answer

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: the whole process, and its threads by group (api, hub, bench)."""
        groups = json.loads(self.send("cpu"))
        return {"process": cpu_seconds_of(Path(f"/proc/{self.proc.pid}/stat")), **groups}

    def close(self) -> None:
        self.send("quit")
        self.proc.wait(60)


def phase(hub: Hub, api_on: bool, seconds: float, clients: Clients | None) -> dict:
    hub.send("on" if api_on else "off")
    stop = threading.Event()
    threads = clients.run(stop) if clients is not None else []
    time.sleep(SETTLE_S)
    n0 = len(clients.latencies) if clients else 0
    c0, w0 = hub.cpu(), time.monotonic()
    time.sleep(seconds)
    c1, w1 = hub.cpu(), time.monotonic()
    n1 = len(clients.latencies) if clients else 0
    stop.set()
    for t in threads:
        t.join(15)
    wall = w1 - w0
    # process: all of it, minus the benchmark's own sampler; hub: every thread but the API's and the sampler
    process = c1["process"] - c0["process"] - (c1["bench"] - c0["bench"])
    pipeline = c1["hub"] - c0["hub"]
    return {"api": "on" if api_on else "off", "wall_s": round(wall, 3), "process_cpu_s": round(process, 3),
            "pipeline_cpu_s": round(pipeline, 3), "api_cpu_s": round(c1["api"] - c0["api"], 3),
            "cores": round(process / wall, 4), "pipeline_cores": round(pipeline / wall, 4), "requests": n1 - n0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--phase-s", type=float, default=20.0)
    ap.add_argument("--pairs", type=int, default=3, help="on phases (each between two off phases)")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--no-pin", action="store_true", help="do not pin the hub to one core (clients to the others)")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "api_load.json")
    args = ap.parse_args()
    if args.child:
        return child(args.child)

    from edge_media.tools.devserver import free_port

    cpus = sorted(os.sched_getaffinity(0))
    hub_cpu = None if args.no_pin or len(cpus) < 2 else cpus[-1]
    if hub_cpu is not None:
        os.sched_setaffinity(0, set(cpus[:-1]))  # the clients stay off the hub's core
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # someone walks through twice in 30 s: each camera records a clip about every 15 s
        spec = VideoSpec(width=640, height=360, fps=15, duration_s=30.0, gop=30, audio=True, noise_sigma=2.0,
                         boxes=[MovingBox(4.0, 8.0, size=(60, 120)), MovingBox(19.0, 23.0, size=(60, 120))])
        video = make_video(folder / "cam.mp4", spec)
        hub = Hub(make_config(folder, video, args.cameras, free_port()), hub_cpu)
        clients = Clients(f"http://127.0.0.1:{hub.port}", hub.token, args.clients)
        try:
            time.sleep(WARMUP_S)
            phases = []
            for i in range(2 * args.pairs + 1):
                on = i % 2 == 1
                phases.append(phase(hub, on, args.phase_s, clients if on else None))
                p = phases[-1]
                print(f"phase {i + 1}/{2 * args.pairs + 1}: api {p['api']:<3} process {p['cores']:.4f} cores, "
                      f"pipeline threads {p['pipeline_cores']:.4f}, API threads {p['api_cpu_s'] / p['wall_s']:.4f} "
                      f"({p['requests']} requests)", flush=True)
        finally:
            hub.close()
    def ratios_of(key: str) -> list[float]:
        """Each "on" phase against the mean of the "off" phases on either side of it."""
        return [phases[i][key] / statistics.mean([phases[i - 1][key], phases[i + 1][key]])
                for i in range(1, len(phases), 2)]

    ratios, pipeline_ratios = ratios_of("cores"), ratios_of("pipeline_cores")
    lat = sorted(clients.latencies)
    result = {
        "input": f"{args.cameras} cameras, 640x360 15 fps H.264 + AAC, looping at real time, motion every 15 s",
        "clients": args.clients, "poll": "GET /api/v1/events?limit=100 + GET /api/v1/cameras, once a second each",
        "hub_cpu": hub_cpu, "phase_s": args.phase_s, "phases": phases,
        "process_ratios_on_vs_off": [round(r, 4) for r in ratios],
        "process_ratio_median": round(statistics.median(ratios), 4),
        "pipeline_ratios_on_vs_off": [round(r, 4) for r in pipeline_ratios],
        "pipeline_ratio_median": round(statistics.median(pipeline_ratios), 4),
        "requests": len(lat), "errors": clients.errors,
        "events_per_response": round(clients.items / max(1, len(lat) / 2), 1),
        "latency_ms": {"p50": round(1000 * lat[len(lat) // 2], 2), "p95": round(1000 * lat[int(len(lat) * 0.95)], 2),
                       "max": round(1000 * lat[-1], 2)} if lat else None,
    }
    def med(api: str, key: str) -> float:
        return statistics.median(p[key] for p in phases if p["api"] == api)

    print(f"\n{'api':<26} {'process cores':>14} {'pipeline cores':>15} {'API cores':>10}")
    for api, title in (("off", "off"), ("on", f"on, {args.clients} clients polling")):
        api_cores = statistics.median(p["api_cpu_s"] / p["wall_s"] for p in phases if p["api"] == api)
        print(f"{title:<26} {med(api, 'cores'):>14.4f} {med(api, 'pipeline_cores'):>15.4f} {api_cores:>10.4f}")
    print(f"pipeline threads on/off: {', '.join(f'{r:.4f}' for r in pipeline_ratios)}; "
          f"median {result['pipeline_ratio_median']:.4f} (target <= 1.03)")
    print(f"whole process on/off:    {', '.join(f'{r:.4f}' for r in ratios)}; "
          f"median {result['process_ratio_median']:.4f} (the API's own work included)")
    if result["latency_ms"]:
        print(f"requests {result['requests']}, errors {result['errors']}, "
              f"latency p50 {result['latency_ms']['p50']} ms, "
              f"p95 {result['latency_ms']['p95']} ms; ~{result['events_per_response']} events per /events response")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
