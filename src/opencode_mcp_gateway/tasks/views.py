"""What the task operations return. The tools return these as they are, so they are
the tools' output schemas too (tools/views.py adds the shapes only the tools have)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .state import Status

TaskStatus = Status  # one vocabulary: the turn-state rules' (state.py)


class FileChange(BaseModel):
    path: str
    status: str = Field(description="added, modified or deleted")
    additions: int
    deletions: int


class FileDiff(FileChange):
    patch: str = Field(description="unified diff of this file (cut when patch_truncated)")
    patch_truncated: bool = False


class Question(BaseModel):
    question: str | None = None
    header: str | None = None
    options: list[str] = Field(default_factory=list)
    multiple: bool = False


class PendingRequest(BaseModel):
    id: str = Field(description="request_id to pass to respond_to_task")
    kind: Literal["permission", "question"]
    description: str
    permission: str | None = Field(
        default=None, description="permission OpenCode asks for (bash, edit, external_directory…)"
    )
    patterns: list[str] = Field(default_factory=list)
    command: str | None = None
    questions: list[Question] = Field(default_factory=list)
    how_to_answer: str | None = None


class RetryInfo(BaseModel):
    attempt: int | None = None
    message: str | None = None
    next_retry_at: str | None = None


class Tokens(BaseModel):
    input: int = 0
    output: int = 0
    reasoning: int = 0
    cache_read: int = 0
    cache_write: int = 0


class WorkspaceView(BaseModel):
    repository: str = Field(description="the repository as given (credentials removed), or the local repository")
    ref: str = Field(description="the branch, tag or commit the task started from")
    base_commit: str
    branch: str | None = Field(default=None, description="the branch the task's work is committed to")
    head_commit: str | None = Field(
        default=None, description="the branch's commit after the turn (base_commit if unchanged)"
    )
    directory: str = Field(description="the task's worktree on the worker")
    pushed: bool = False
    push_error: str | None = Field(default=None, description="why the push failed (the task itself stays completed)")


class TaskView(BaseModel):
    task_id: str
    status: TaskStatus
    session_id: str
    result: str | None = Field(
        default=None, description="the final assistant text once completed (text so far while running)"
    )
    structured_output: Any = Field(
        default=None,
        description="with output_schema: the JSON object the model produced (status completed: it matches the schema)",
    )
    error: str | None = Field(default=None, description="why the task failed")
    read_only: bool = Field(default=False, description="the task's turn ran read-only: it could not change files")
    files_changed: list[FileChange] = Field(default_factory=list)
    pending: list[PendingRequest] = Field(default_factory=list, description="open requests while waiting_for_input")
    retry: RetryInfo | None = Field(default=None, description="set while OpenCode retries a failing model provider")
    notices: list[str] = Field(default_factory=list, description="what the gateway did on the task's behalf")
    agent: str | None = None
    model: str | None = None
    directory: str | None = None
    title: str | None = None
    created_at: str | None = None
    completed_at: str | None = None
    elapsed_seconds: float | None = None
    tokens: Tokens = Field(default_factory=Tokens)
    cost: float = Field(0.0, description="USD, as OpenCode prices the model (0 when it has no price list)")
    budget: dict[str, float] | None = Field(
        default=None, description="the task's max_tokens and max_cost_usd, when it has any"
    )
    next_step: str | None = Field(default=None, description="what the caller can do next")  # the tools write it
    workspace: WorkspaceView | None = Field(
        default=None, description="the task's own worktree and branch, when isolated"
    )


class ToolCall(BaseModel):
    tool: str | None
    status: str | None = Field(
        description="pending, running, completed, error; 'refused': the tool was not available to the turn "
        "(e.g. a write in a read_only task), nothing ran"
    )
    title: str | None = None
    input: dict[str, Any] = Field(
        default_factory=dict, description="the tool's arguments; when cut, {'truncated_json': <the start of them>}"
    )
    input_truncated: bool = False
    output: str | None = None
    error: str | None = None


class AttachmentInfo(BaseModel):
    filename: str
    mime_type: str
    size: int = Field(description="bytes")


class Message(BaseModel):
    id: str | None
    role: str | None
    text: str
    tool_calls: list[ToolCall] = Field(default_factory=list)
    created_at: int | None = Field(default=None, description="epoch milliseconds")
    finish: str | None = None
    error: str | None = None
    attachments: list[AttachmentInfo] = Field(
        default_factory=list, description="files and images sent with this message (never their content)"
    )


class MessagesView(BaseModel):
    task_id: str
    messages: list[Message] = Field(description="oldest first")
    total: int = Field(description="messages in the task's conversation")
    truncated: bool
    note: str | None = None


class DiffView(BaseModel):
    task_id: str
    files: list[FileDiff]
    truncated: bool
    note: str | None = None


class AbortView(BaseModel):
    task_id: str
    aborted: bool = Field(description="true if the task was running and has been stopped")
    status: TaskStatus
    message: str


class OpenCodeHealth(BaseModel):
    healthy: bool
    version: str | None = None
    url: str
    error: str | None = None


class WorkerHealth(OpenCodeHealth):
    name: str = Field(description="the worker's name; task ids of workers other than w0 start with it")
    event_stream_connected: bool
    running_tasks: int = Field(description="tasks running on it, as placement counts them")


class SandboxHealth(BaseModel):
    name: str = Field(description="the sandbox's name (a hash, never the caller's); its task ids start with it")
    state: str = Field(description="starting, running or stopped")
    scope: str = Field(description="caller or task")
    running_tasks: int
    idle_seconds: float = Field(description="since its last task or call")


class RespondView(BaseModel):
    task_id: str
    request_id: str
    answered: bool
    status: TaskStatus
    pending: list[PendingRequest] = Field(default_factory=list)
