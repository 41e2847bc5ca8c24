"""The server process: `revsent serve` as a user runs it, one process or several workers on one port."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from .conftest import REVSENT, free_port, serve_process, start_server


def test_server_process_answers_and_stops_cleanly_on_sigterm(model_dir):
    proc, url = start_server(model_dir)
    try:
        answer = httpx.post(url + "/v1/predict", json={"text": "great food"}).json()
        assert answer["predictions"][0]["label"] == "positive"
        with ThreadPoolExecutor(8) as pool:  # requests in flight when SIGTERM comes still get their answers
            futures = [pool.submit(httpx.post, url + "/v1/explain", json={"text": "great food and friendly staff"},
                                   timeout=30) for _ in range(8)]
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            statuses = [f.result().status_code for f in futures]
        assert statuses == [200] * 8
        # uvicorn finishes the requests, then ends by the signal it caught (the shell's convention)
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()


def test_serve_refuses_a_missing_model_with_one_line(tmp_path):
    result = subprocess.run([REVSENT, "serve", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("revsent: error:") and len(result.stderr.strip().splitlines()) == 1


def _children(proc) -> list[int]:
    """The workers ``proc`` started (``revsent serve --workers``): its children but for
    multiprocessing's resource tracker."""
    found = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout
    pids = [int(pid) for pid in found.split()]
    return [pid for pid in pids if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _listening(pids, port, count: int, seconds: float = 60) -> dict[int, set[str]]:
    """Wait until ``count`` of ``pids`` listen on ``port`` (a worker answers /readyz while the other
    may still be loading its model); returns the listening sockets by process."""
    deadline = time.time() + seconds
    while True:
        found = {pid: held for pid, held in _sockets_by_process(pids, port, "0A").items() if held}
        if len(found) >= count or time.time() > deadline:
            return found
        time.sleep(0.1)


def _sockets_by_process(pids, port, state: str) -> dict[int, set[str]]:
    """The sockets on the server's ``port`` in ``state`` ("01" established, "0A" listening) that each
    of ``pids`` holds, by inode (the kernel's tables in /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:  # the local port
                inodes.add(fields[9])
    held = {}
    for pid in pids:
        links = []
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                links.append(os.readlink(fd))
            except FileNotFoundError:  # closed since the listing (a worker still starting)
                pass
        held[pid] = {link[8:-1] for link in links if link.startswith("socket:[") and link[8:-1] in inodes}
    return held


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the kernel's socket table")
def test_workers_share_the_port_evenly_and_stop_together(model_dir):
    proc, url = start_server(model_dir, "--workers", "2")
    port = int(url.rsplit(":", 1)[1])
    workers = _children(proc)
    try:
        assert len(workers) == 2, workers
        _listening(workers, port, 2)
        body = json.dumps({"text": "great friendly food"}).encode()
        request = (f"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]  # kept alive, as a load test's
        for client in clients:
            client.sendall(request)
        for client in clients:
            reader = client.makefile("rb")
            head = [reader.readline()]
            while head[-1] not in (b"\r\n", b""):
                head.append(reader.readline())
            size = next(int(line.split(b":")[1]) for line in head if line.lower().startswith(b"content-length:"))
            assert head[0].startswith(b"HTTP/1.1 200") and b'"positive"' in reader.read(size)
        # each process listens on a socket of its own (SO_REUSEPORT: on one shared socket the first
        # process awake takes most of the connections), and the kernel spreads the connections over them
        listening = {pid: found for pid, found in _sockets_by_process(workers, port, "0A").items() if found}
        assert len(listening) == 2 and len(set.union(*listening.values())) == 2, listening
        held = {pid: len(found) for pid, found in _sockets_by_process(workers, port, "01").items() if found}
        assert held.keys() == listening.keys() and sum(held.values()) == 32 and min(held.values()) >= 4, held
        for client in clients:
            client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in held)
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        for pid in workers:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)


def test_workers_refuse_a_port_in_use_and_a_missing_model_with_one_line(model_dir, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([REVSENT, "serve", str(model_dir), "--workers", "2", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert busy.returncode != 0 and busy.stderr.startswith("revsent: error: cannot listen on 127.0.0.1:")
    nowhere = subprocess.run([REVSENT, "serve", str(model_dir), "--workers", "2", "--host", "nosuch.invalid"],
                             capture_output=True, text=True, timeout=60)
    assert nowhere.returncode != 0 and nowhere.stderr.startswith("revsent: error: cannot listen on nosuch.invalid:")
    assert len(nowhere.stderr.strip().splitlines()) == 1, nowhere.stderr
    missing = subprocess.run([REVSENT, "serve", str(tmp_path / "nothing"), "--workers", "2",
                              "--port", str(free_port())], capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("revsent: error:"), missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr


def test_workers_stop_when_their_parent_is_killed(model_dir):
    proc, url = start_server(model_dir, "--workers", "2")
    workers = _children(proc)
    try:
        assert len(workers) == 2, workers
        proc.kill()  # SIGKILL: nothing passes a signal on
        proc.wait(10)
        deadline = time.time() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "workers outlived their parent"
    finally:
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _stop(proc) -> str:
    """SIGTERM, then what the server wrote to stderr."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=60)[1]
    finally:
        proc.kill()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the kernel's socket table")
def test_workers_on_port_0_share_the_port_the_system_chose_and_say_which(model_dir):
    proc = serve_process(model_dir, "--workers", "2", "--port", "0")
    try:
        lines = []
        threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
        deadline, match = time.time() + 60, None
        while time.time() < deadline and not match and proc.poll() is None:
            match = next(filter(None, (re.search(r"2 workers serving on http://127\.0\.0\.1:(\d+)", line)
                                       for line in list(lines))), None)
            time.sleep(0.1)
        assert match, lines
        port = int(match.group(1))
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        listening = _listening(_children(proc), port, 2)
        assert len(listening) == 2, listening  # both workers on the one port
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        time.sleep(0.5)  # the reader thread takes the last lines
        assert not any("Traceback" in line for line in lines)
    finally:
        proc.kill()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the kernel's socket table")
def test_the_port_is_held_while_the_workers_load_so_a_second_server_is_refused(model_dir):
    port = free_port()
    first = serve_process(model_dir, "--workers", "2", "--port", port, "--log-level", "warning")
    try:
        deadline = time.time() + 60
        while time.time() < deadline:  # what another server's check finds: the port taken, and since when
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    break
            time.sleep(0.02)
        # taken before any worker listens: the parent holds it from its check on, so that a second
        # server cannot join the workers while they load their models
        assert not _listening(_children(first), port, 1, seconds=0), "the port was free until the workers listened"
        second = subprocess.run([REVSENT, "serve", str(model_dir), "--workers", "2",
                                 "--port", str(port)], capture_output=True, text=True, timeout=60)
        assert second.returncode != 0 and second.stderr.startswith(f"revsent: error: cannot listen on 127.0.0.1:{port}")
        assert len(_listening(_children(first), port, 2)) == 2  # the first server goes on
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        assert "Traceback" not in _stop(first)
    finally:
        first.kill()
