"""The tools' parameters: types, limits and the descriptions clients show to models."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.types import ToolAnnotations
from pydantic import Field

from ..tasks.attachments import AttachmentInput

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
RUNS_AGENT = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)

TaskIdArg = Annotated[str, Field(description="task_id returned by run_coding_task or run_coding_task_async")]
Prompt = Annotated[str, Field(description="What OpenCode should do, in plain language, with the files and goal")]
AgentArg = Annotated[str | None, Field(description="OpenCode agent (see list_agents); default from DEFAULT_AGENT")]
ModelArg = Annotated[str | None, Field(description="provider/model to use, e.g. openai/gpt-4o; default: OpenCode's")]
DirectoryArg = Annotated[
    str | None, Field(description="absolute workspace path on the OpenCode host (inside WORKSPACE_ROOT if set)")
]
TitleArg = Annotated[str | None, Field(description="short title for the OpenCode session")]
FollowUpArg = Annotated[
    str | None, Field(description="task_id of an earlier task to continue in the same session, keeping its context")
]
MaxTokensArg = Annotated[
    int | None,
    Field(gt=0, description="abort the task once it has used more tokens than this (default: TASK_MAX_TOKENS)"),
]
MaxCostArg = Annotated[
    float | None,
    Field(gt=0, description="abort the task once it has cost more than this many USD (default: TASK_MAX_COST_USD)"),
]
RepositoryArg = Annotated[
    str | None,
    Field(
        description="git URL to work on (https://…, under the gateway's REPOSITORY_ALLOWLIST): the task runs in "
        "its own worktree and its work is committed to `branch`. Not with directory"
    ),
]
RefArg = Annotated[
    str | None, Field(description="branch, tag or commit to start from; default: the repository's default branch")
]
BranchArg = Annotated[
    str | None,
    Field(description="new branch for the task's work; default opencode/<short task id>. Must not exist yet"),
]
PushArg = Annotated[bool, Field(description="push `branch` to `repository` when the task's turn completes")]
IsolateArg = Annotated[
    bool,
    Field(description="with directory (a local git repository): work in its own worktree on a new branch instead"),
]
NotifyUrlArg = Annotated[
    str | None,
    Field(
        description="http(s) URL (under the gateway's WEBHOOK_URL_ALLOWLIST) that gets a signed webhook (Standard "
        "Webhooks) when the task completes, fails, is aborted or waits for input; a follow-up's replaces the earlier"
    ),
]
ReadOnlyArg = Annotated[
    bool,
    Field(
        description="true: the task may only read and answer (reviews, explanations, investigations). No edit, "
        "write or patch tools and no shell: a write attempt is refused and the workspace stays exactly as it was"
    ),
]
OutputSchemaArg = Annotated[
    dict[str, Any] | None,
    Field(
        description="a JSON Schema (an object schema, at most 16 KiB) the answer must match: the result's "
        "structured_output then holds the JSON object the model produced, checked against it. A model that "
        "cannot comply ends the task failed"
    ),
]
AttachmentsArg = Annotated[
    list[AttachmentInput] | None,
    Field(
        description="files for the prompt, each {filename, mime_type, data (base64)}: images (image/png, "
        "image/jpeg, image/webp, image/gif; the model must take images) and text files (text/*, "
        "application/json, …). Limits: MAX_ATTACHMENTS per call, MAX_ATTACHMENT_BYTES per file"
    ),
]
