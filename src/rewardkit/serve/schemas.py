"""Request and response bodies of the reward server (pydantic models; they make the OpenAPI spec)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field


def _unicode(s: str) -> str:
    # JSON may carry lone surrogates ("\ud800"); tokenizers cannot encode them.
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"text is not valid Unicode (lone surrogate at position {err.start})") from None
    return s


Text = Annotated[str, AfterValidator(_unicode)]


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: Text


Messages = Annotated[list[ChatMessage], Field(min_length=1)]


class ScoreRequest(BaseModel):
    conversations: list[Messages] = Field(description="Conversations, each ending with the answer to rate.")


class ScoreResponse(BaseModel):
    scores: list[float]
    num_tokens: list[int]
    truncated: list[bool]
    normalized: list[float | None] | None = Field(description="null unless the model has reward statistics")
    sub_scores: list[dict[str, float]] | None = Field(None, description="per-objective rewards, if any")
    step_scores: list[list[float]] | None = Field(
        None,
        description="process reward models: P(step is good) per step of each answer (scores: their aggregate)",
    )


class CompareRequest(BaseModel):
    prompt: Text | Messages = Field(description="The prompt, as text (one user turn) or as messages.")
    responses: list[Text] = Field(min_length=1, description="Candidate answers to rank.")


class CompareResponse(ScoreResponse):
    ranking: list[int] = Field(description="indices into `responses`, best first")


class GetRewardRequest(BaseModel):
    """OpenRLHF's remote reward model request; other keys (`prompts`, `labels`, ...) are ignored."""

    query: Text | list[Text] = Field(description="Prompt + response texts, formatted with the chat template.")


class GetRewardResponse(BaseModel):
    rewards: list[float]
    scores: list[float]


class FieldError(BaseModel):
    where: str = Field(description="the field, e.g. conversations[0][1].role")
    msg: str
    type: str


class ErrorResponse(BaseModel):
    detail: str = Field(description="what was wrong, and the setting or field involved")
    errors: list[FieldError] | None = Field(None, description="one entry per invalid field (422 only)")


def _errors(*codes: int) -> dict:
    why = {
        400: "not supported by this model",
        401: "missing or wrong API key",
        413: "over a server limit",
        422: "invalid request",
        500: "the model failed",
    }
    return {c: {"model": ErrorResponse, "description": why[c]} for c in codes}


class PoolingData(BaseModel):
    index: int
    object: str = "pooling"
    data: list[float] | list[list[float]] | str = Field(
        description="the head's output; for a process reward model [P(bad), P(good)] per step (vLLM's step "
        "pooling); a base64 string of little-endian float32 when encoding_format is base64"
    )


class PoolingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int
    completion_tokens: int = 0
    prompt_tokens_details: None = None


class PoolingResponse(BaseModel):
    id: str
    object: str = "list"
    created: int
    model: str
    data: list[PoolingData]
    usage: PoolingUsage
