"""`gateway.busy_poll_us`: the gateway serves the OpenAI SDK as usual, keeps its runtime polling
(burning CPU) for the window after each request, and goes back to sleep once the window has
passed with nothing new, so that an idle gateway costs no CPU.

The window here is long (300 ms) so that the spinning is plainly measurable in the process's
CPU time (/proc/PID/stat) with generous bounds: a gateway that never polled, or never stopped,
fails one of the two assertions.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import gw_fixture as g
from gw_fixture import KEY_A, sha256

openai = pytest.importorskip("openai")

WINDOW_US = 300_000
MOCK_MODELS = {"gpt-busy": {"api": "openai", "output_tokens": 4}}


def gateway_config(mock_url, tmp):
    return {
        "providers": [{"name": "busy-1", "model": "gpt-busy", "quotas": [g.day_tokens()]}],
        "capabilities": [{"name": "chat", "providers": [{"provider": "busy-1"}]}],
        "gateway": g.gateway_section({"busy-1": g.upstream("openai", mock_url)},
                                     [{"name": "team-a", "sha256": sha256(KEY_A)}],
                                     busy_poll_us=WINDOW_US, ledger=False),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_over(pid: int, seconds: float) -> float:
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_it_polls_within_its_window_after_a_request_and_sleeps_when_idle(gw):
    pid = gw.proc.pid
    c = openai.OpenAI(base_url=gw.url + "/v1", api_key=KEY_A, max_retries=0, timeout=15)
    try:
        # Idle since start (its readiness probes are no requests): asleep.
        time.sleep(WINDOW_US / 1e6 + 0.2)
        idle = cpu_over(pid, 0.5)
        r = c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
        assert r.choices[0].message.content
        assert r.usage is not None and r.usage.completion_tokens == 4
        # Within the window after the request: the runtime spins (about 0.2 s of CPU in 0.2 s).
        busy = cpu_over(pid, 0.2)
        # Past the window: asleep again.
        time.sleep(WINDOW_US / 1e6)
        after = cpu_over(pid, 0.5)
    finally:
        c.close()
    assert idle < 0.1, f"an idle gateway used {idle:.2f} s of CPU in 0.5 s"
    assert busy > 0.06, f"the gateway used only {busy:.2f} s of CPU in 0.2 s within its polling window"
    assert after < 0.1, f"the gateway kept polling past its window: {after:.2f} s of CPU in 0.5 s"
