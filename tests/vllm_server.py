"""A real vLLM server for the integration tests: vLLM's CPU build, from its own venv (.ci/setup-vllm).

It listens on 127.0.0.1 only, keeps a small KV cache (1 GiB), and runs in its own process group, so that
killing it (an outage) or stopping it takes its engine and worker processes along.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import suppress
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
VLLM_PYTHON = Path(os.environ.get("CODELLAMA_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1", "HF_HUB_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VllmServer:
    """`python -m vllm.entrypoints.openai.api_server` serving `model_dir` in float32 (greedy output is then
    what our float32 engine decodes), its output appended to `log_path`; with `api_key`, its /v1 routes want it."""

    def __init__(self, model_dir: Path, log_path: Path, port: int | None = None, api_key: str | None = None) -> None:
        self.model_dir = model_dir
        self.api_key = api_key
        self.log_path = log_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # The `vllm` console script is broken in vllm-cpu 0.32; the module entry point works.
        cmd = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir),
               "--host", "127.0.0.1", "--port", str(self.port), "--dtype", "float32", "--max-model-len", "1024",
               "--enforce-eager", *(["--api-key", self.api_key] if self.api_key else [])]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env={**os.environ, **VLLM_ENV}, start_new_session=True)

    def wait_ready(self, timeout: float = 600) -> float:
        """Seconds until /v1/models answers; raises with the log's tail if the server dies or takes too long."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited while starting:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/v1/models", headers=self.headers, timeout=2).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"vLLM was not ready after {timeout:.0f}s:\n{self.log_tail()}")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def kill(self) -> None:
        """An outage: SIGKILL the whole process group, no goodbye to the clients."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        if not self._end(signal.SIGTERM):
            self._end(signal.SIGKILL)

    def _end(self, sig: signal.Signals, wait: float = 30) -> bool:
        """Send `sig` to the server's process group; whether the whole group is gone within `wait` seconds."""
        if self.process is None:
            return True
        pgid = self.process.pid
        with suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while True:
            self.process.poll()  # reaps the API server (its engine processes are reaped by init)
            if not _group_alive(pgid):
                self.process = None
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def metric(self, name: str) -> float:
        """The sum of a Prometheus metric's samples on /metrics (e.g. vllm:generation_tokens_total)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + "{") or line.startswith(name + " "))

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
