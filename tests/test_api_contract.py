"""The API keeps its OpenAPI promise: schemathesis against the in-process ASGI app.

Schemathesis reads /openapi.json and sends requests generated from it, valid and
invalid (negative data), to every operation, then checks each answer against the
document: no server error, a documented status, content type, headers and body; a
request that breaks the schema refused; with a key, a request without it refused. All
its checks run but positive data acceptance: a request that fits the schema may still be
refused for what no schema can say (random bytes are no image), and the document says so.

It runs twice, on a server without an API key (the document then declares no security)
and on one with a key (declared; the real key replaces the generated one, and requests
without it must get 401). The tiny model is shared, so requests that reach it are fast.
The cases are the same every run (derandomized); ``-s`` prints how many each got.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from segmentation.api import API_KEY_HEADER, Settings, create_app

KEY = "open sesame"
#: Generated requests per operation and run: four operations, two runs.
EXAMPLES = 60
#: Small limits, so the generated bodies and the limits' answers stay cheap.
LIMITS = {"max_upload_mb": 0.5, "max_megapixels": 2.0, "concurrency": 2}
#: Cases sent, per run and operation (printed with ``-s``, for a closing note).
CASES: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def every_operation_is_exercised() -> Iterator[None]:
    """After the runs: each operation got its examples (none filtered away unnoticed)."""
    yield
    for label, count in sorted(CASES.items()):
        print(f"schemathesis: {count} cases, {label}")
    assert all(count >= 5 for count in CASES.values()), CASES  # /health has no inputs: 10


@pytest.fixture(scope="module")
def open_api(tiny_segmenter) -> schemathesis.schemas.BaseSchema:
    """The document of a server without an API key."""
    app = create_app(Settings(**LIMITS), segmenter=tiny_segmenter)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module")
def keyed_api(tiny_segmenter) -> schemathesis.schemas.BaseSchema:
    """The document of a server with an API key."""
    app = create_app(Settings(api_key=KEY, **LIMITS), segmenter=tiny_segmenter)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """Schemathesis 4.32's from_fixture() reads ``node._nodeid``, which pytest 9 dropped
    (it is ``node.nodeid`` now): give it the attribute, nothing else changes."""
    request.node._nodeid = request.node.nodeid


CONTRACT = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases every run: a CI failure is a change, not luck
    database=None,  # no .hypothesis folder in the work tree
    suppress_health_check=list(HealthCheck),
)


@schemathesis.pytest.from_fixture("open_api").parametrize()
@CONTRACT
def test_the_api_without_a_key_keeps_its_document(case) -> None:
    assert "security" not in case.operation.definition.raw  # nothing to send
    label = f"no key, {case.operation.label}"
    CASES[label] = CASES.get(label, 0) + 1
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


@schemathesis.pytest.from_fixture("keyed_api").parametrize()
@CONTRACT
def test_the_api_with_a_key_keeps_its_document(case) -> None:
    label = f"key, {case.operation.label}"
    CASES[label] = CASES.get(label, 0) + 1
    if API_KEY_HEADER in (case.headers or {}):  # generated: the real one instead
        case.headers[API_KEY_HEADER] = KEY
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
