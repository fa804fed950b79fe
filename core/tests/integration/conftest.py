"""Fixtures that start the real `tessera` binary and point real S3 clients at it.

Each gateway runs in its own temporary data directory on free loopback ports and is stopped
with SIGTERM at the end (the exit code is checked: a clean drain exits 0).
"""

import os
import signal
import socket
import subprocess
import tempfile
import time

import boto3
import botocore.config
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
ACCESS_KEY = "TESSERATESTKEY000001"
SECRET_KEY = "tessera-test-secret-key-0000000000000001"
REGION = "us-east-1"


def binary():
    """The gateway binary under test: $TESSERA_BIN or the debug build of the workspace."""
    return os.environ.get("TESSERA_BIN", os.path.join(ROOT, "target", "debug", "tessera"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """A running `tessera serve` process."""

    def __init__(self, extra_args=(), env=None, data_dir=None, config_text=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="tessera-it-")
        self.data_dir = data_dir or os.path.join(self.tmp.name, "data")
        self.port = free_port()
        self.admin_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        args = [binary(), "serve", "--data-dir", self.data_dir,
                "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin_port}"]
        if config_text is not None:
            path = os.path.join(self.tmp.name, "tessera.toml")
            with open(path, "w") as f:
                f.write(config_text)
            args += ["--config", path]
        args += list(extra_args)
        full_env = dict(os.environ)
        full_env.update({"TESSERA_ACCESS_KEY": ACCESS_KEY, "TESSERA_SECRET_KEY": SECRET_KEY})
        if env is not None:
            full_env.update(env)
        self.log_path = os.path.join(self.tmp.name, "gateway.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=full_env)
        self._wait_ready()

    def _wait_ready(self, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}: {self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"gateway did not start: {self.logs()}")

    def logs(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def client(self, addressing_style="path", access_key=ACCESS_KEY, secret_key=SECRET_KEY, **config):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=REGION,
            config=botocore.config.Config(s3={"addressing_style": addressing_style},
                                          retries={"max_attempts": 1}, **config),
        )

    def aws(self, *args, check=True, access_key=ACCESS_KEY, secret_key=SECRET_KEY):
        """Runs the aws CLI against this gateway and returns the completed process."""
        env = dict(os.environ)
        env.update({"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key,
                    "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": "/dev/null",
                    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_MAX_ATTEMPTS": "1"})
        result = subprocess.run(["aws", "--endpoint-url", self.endpoint, *args],
                                capture_output=True, text=True, env=env, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stops the gateway and returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def cleanup(self):
        self.stop()
        self.tmp.cleanup()


@pytest.fixture
def gateway():
    gw = Gateway()
    yield gw
    code = gw.stop()
    logs = gw.logs() if not gw.log.closed else open(gw.log_path).read()
    gw.tmp.cleanup()
    assert code == 0, f"gateway exited with {code}: {logs}"


@pytest.fixture(scope="module")
def shared_gateway():
    gw = Gateway()
    yield gw
    gw.cleanup()
