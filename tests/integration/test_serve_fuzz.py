"""Schemathesis fuzzing of the served OpenAPI spec, in process: valid and invalid requests, never a 5xx."""

from __future__ import annotations

from conftest import require  # noqa: E402

schemathesis = require(
    "schemathesis"
)  # in CI a missing install fails: the fuzz claim must not turn into a skip

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from rewardkit.scorers.base import Score  # noqa: E402
from rewardkit.serve.app import create_app  # noqa: E402

KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class LengthRM:
    """Deterministic stand-in: score = length of the last message; tokens = characters."""

    kind, name, max_length = "fake", "length-rm", 4096

    def count_tokens(self, convs):
        return [sum(len(m["content"]) for m in c) for c in convs]

    def score_detailed(self, convs):
        tokens = self.count_tokens(convs)
        return [Score(float(len(c[-1]["content"])), num_tokens=n) for c, n in zip(convs, tokens)]

    def score_texts(self, texts):
        return [Score(float(len(t)), num_tokens=len(t)) for t in texts]


# Small limits so the fuzzer also reaches the 413 paths.
app = create_app(
    LengthRM(), api_key=KEY, max_items=8, max_tokens_per_item=200, max_body_bytes=4096, max_wait_ms=1
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=AUTH)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], deterministic=True)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_server_errors(case):
    case.call_and_validate(headers=AUTH, checks=[not_a_server_error, response_schema_conformance])
