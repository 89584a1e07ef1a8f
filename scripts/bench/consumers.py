"""The four bus consumers the benchmark compares, behind one interface.

    c = make_consumer("agent", ctx, socket, secret="bench-agent-10000-0", track_peers=False)
    c.start(); c.wait_progress(1, timeout)   # identity written once (drain: one line read)
    c.progress()                              # identity writes so far (drain: lines read)
    c.proc.cpu_ns(); c.proc.hwm_kib(); c.stop()

"Progress" is what each one can be watched by without asking it anything (which would cost it
CPU): ts-kube-agent and the Python sidecar by their writes in kube-emu's request log, the DOM
baseline by the identity lines it prints, the drain by the line counter it keeps in a shared file.
"""
import mmap
import os
import struct
import sys
import time

from procstat import Proc, now
from services import NAMESPACE

HERE = os.path.dirname(os.path.abspath(__file__))


class Consumer:
    kind = "?"
    counts_lines = False  # progress() counts lines (drain) rather than identity writes

    def __init__(self, ctx, socket_path, secret, track_peers):
        self.ctx, self.socket_path, self.secret = ctx, socket_path, secret
        self.track_peers = track_peers
        self.proc = None

    def argv(self):
        raise NotImplementedError

    def start(self, **proc_args):
        self.proc = Proc(self.argv(), name=f"{self.kind}", cpu=self.ctx.consumer_cpu,
                         log_dir=self.ctx.log_dir, **proc_args)
        return self.proc.started_at

    def progress(self):
        raise NotImplementedError

    def wait_progress(self, target, timeout, interval=0.003):
        """Polls until progress() >= target; returns the time it was seen."""
        deadline = now() + timeout
        while True:
            if self.progress() >= target:
                return now()
            self.proc.check_alive()
            if now() > deadline:
                raise TimeoutError(f"{self.kind}: progress {self.progress()} < {target} after "
                                   f"{timeout:.0f} s")
            time.sleep(interval)

    def stop(self):
        if self.proc:
            self.proc.stop()


class AgentConsumer(Consumer):
    kind = "agent"

    def argv(self):
        a = [os.path.join(self.ctx.build, "agent/ts-kube-agent"), "--socket", self.socket_path,
             "--kubeconfig", self.ctx.emu.kubeconfig, "--namespace", NAMESPACE,
             "--secret", self.secret, "--admin-addr", "127.0.0.1:0", "--log-format", "text"]
        if self.track_peers:
            a.append("--track-peers")
        return a

    def progress(self):
        return self.ctx.emu.mutations(self.secret)


class AgentBeforeConsumer(AgentConsumer):
    """Another ts-kube-agent binary (BENCH_AGENT_BEFORE=path), run beside the built one so a
    change is measured before/after in one run, interleaved."""
    kind = "agent_before"

    def argv(self):
        a = super().argv()
        a[0] = os.environ["BENCH_AGENT_BEFORE"]
        return a


class PythonConsumer(Consumer):
    kind = "python"

    def argv(self):
        a = [sys.executable, os.path.join(HERE, "python_sidecar.py"), "--socket",
             self.socket_path, "--server", self.ctx.emu.server, "--ca-file", self.ctx.emu.ca_file,
             "--token-file", self.ctx.emu.token_file, "--namespace", NAMESPACE,
             "--secret", self.secret]
        if self.track_peers:
            a.append("--track-peers")
        return a

    def start(self, **proc_args):
        # The Python sidecar needs its Secret to exist (it only PATCHes, as the plain upstream
        # loop does); create it empty first.
        self.ctx.emu.create_secret(self.secret)
        self._created = self.ctx.emu.mutations(self.secret)
        return super().start(max_address_space=self.ctx.python_max_bytes, **proc_args)

    def progress(self):
        return self.ctx.emu.mutations(self.secret) - self._created


class DomConsumer(Consumer):
    kind = "dom"

    def argv(self):
        a = [os.path.join(self.ctx.build, "tools/bench-baselines/dom-agent"),
             "--socket", self.socket_path]
        if self.track_peers:
            a.append("--track-peers")
        return a

    def start(self, **proc_args):
        return super().start(capture_stdout=True, **proc_args)

    def progress(self):
        return sum(1 for _, text in list(self.proc.lines) if text.startswith("identity "))


class DrainConsumer(Consumer):
    kind = "drain"
    counts_lines = True

    def __init__(self, *args):
        super().__init__(*args)
        self.progress_file = os.path.join(self.ctx.work_dir, "drain.progress")
        self._map = None

    def argv(self):
        mask = 16384 | (4096 | 32768 if self.track_peers else 0)
        return [os.path.join(self.ctx.build, "tools/bench-baselines/bus-drain"),
                "--socket", self.socket_path, "--mask", mask,
                "--progress-file", self.progress_file]

    def start(self, **proc_args):
        try:
            os.unlink(self.progress_file)
        except FileNotFoundError:
            pass
        self._map = None
        return super().start(**proc_args)

    def progress(self):
        if self._map is None:
            try:
                with open(self.progress_file, "rb") as f:
                    self._map = mmap.mmap(f.fileno(), 16, prot=mmap.PROT_READ)
            except (FileNotFoundError, ValueError):
                return 0
        return struct.unpack_from("<Q", self._map, 0)[0]

    def stop(self):
        super().stop()
        if self._map is not None:
            self._map.close()
            self._map = None


CONSUMERS = {"agent": AgentConsumer, "agent_before": AgentBeforeConsumer, "dom": DomConsumer, "drain": DrainConsumer,
             "python": PythonConsumer}


def make_consumer(kind, ctx, socket_path, secret, track_peers):
    return CONSUMERS[kind](ctx, socket_path, secret, track_peers)
