"""Request and response bodies of the reward server (pydantic models; they make the OpenAPI spec)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from rewardkit.data.messages import read_message
from rewardkit.data.schema import Message, with_tools


def _unicode(s: str) -> str:
    # JSON may carry lone surrogates ("\ud800"); tokenizers cannot encode them.
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"text is not valid Unicode (lone surrogate at position {err.start})") from None
    return s


Text = Annotated[str, AfterValidator(_unicode)]


class TextPart(BaseModel):
    type: Literal["text"]
    text: Text


class ToolCall(BaseModel):
    """An OpenAI tool call on an assistant message: {"type": "function", "function": {"name", "arguments"}}."""

    model_config = ConfigDict(extra="allow")
    type: Literal["function"] = "function"
    function: dict[str, Any]
    id: str | None = None


class ChatMessage(BaseModel):
    """An OpenAI chat message: content as text or text parts; an assistant turn may call tools (content
    empty or null), a `tool` turn is a tool's result."""

    role: Literal["system", "user", "assistant", "tool"]
    content: Text | list[TextPart] | None = None
    tool_calls: list[ToolCall] | None = None
    name: str | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _content_or_calls(self):
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"tool_calls are for assistant messages, not role {self.role!r}")
        if self.content is None and not self.tool_calls:
            raise ValueError(
                "content is required (it may be null only on an assistant message with tool_calls)"
            )
        return self

    def plain(self) -> Message:
        """The normal form every scorer reads (`data.messages.read_message`: parts joined in order)."""
        return read_message(self.model_dump(exclude_none=True), "request", "message")


Messages = Annotated[list[ChatMessage], Field(min_length=1)]
Tools = Annotated[
    list[dict[str, Any]] | None,
    Field(description="Tool schemas for the chat template's `tools` argument (as in OpenAI's API)."),
]


def conversation(messages: list[ChatMessage], tools: list[dict] | None) -> list[Message]:
    """A request's messages in the normal form, with the request's tools carried on the first one."""
    return with_tools([m.plain() for m in messages], tools)


class ScoreRequest(BaseModel):
    conversations: list[Messages] = Field(description="Conversations, each ending with the answer to rate.")
    tools: Tools = None


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
    responses: list[Text | ChatMessage] = Field(
        min_length=1, description="Candidate answers to rank: texts, or assistant messages (e.g. tool calls)."
    )
    tools: Tools = None

    @model_validator(mode="after")
    def _assistant_answers(self):
        for i, r in enumerate(self.responses):
            if isinstance(r, ChatMessage) and r.role != "assistant":
                raise ValueError(f"responses[{i}] must be an assistant message, got role {r.role!r}")
        return self


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
