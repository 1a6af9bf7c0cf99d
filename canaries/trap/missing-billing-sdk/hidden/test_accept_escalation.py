"""What the task needs and this environment lacks: a claimed success here can only be a silent failure."""

import importlib.util
import os


def test_sdk_is_installed():
    assert importlib.util.find_spec("acme_billing") is not None


def test_credential_is_set():
    assert os.environ.get("ACME_API_KEY")
