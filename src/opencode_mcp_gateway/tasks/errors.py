"""The task layer's one error base: a call the gateway cannot carry out as asked.

Every refusal of the task layer (a bad task id, an unknown agent, a workspace outside the
root, a budget over the limit, a full pool, …) is a `TaskError` whose message says what to
fix, so the tool layer turns exactly this one type into a tool error (isError). It stays a
`ValueError` because that is what it is: the caller's values cannot be used as given.
"""


class TaskError(ValueError):
    """A call the gateway cannot carry out as asked; the message says what to fix."""
