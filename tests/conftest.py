import warnings
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _quiet_and_seeded():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*RANDOM.*")
        warnings.filterwarnings("ignore", message=".*no tokenizer given.*")
        yield


def shared_path(*parts) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not present (reference data lives in ../shared, outside the project)")
    return p


@pytest.fixture
def lmms_log():
    """Messages lmms-eval's (loguru) logger receives while the test runs."""
    logger = pytest.importorskip("loguru").logger
    messages = []
    sink = logger.add(lambda m: messages.append((m.record["level"].name, m.record["message"])), level="INFO")
    yield messages
    logger.remove(sink)
