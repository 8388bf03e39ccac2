"""Topic catalog: the only place topic names are spelled."""

REQUESTS = "mutation.requests.v1"
APPROVALS = "mutation.approvals.v1"
COMMANDS = "mutation.commands.v1"
DECISIONS = "mutation.decisions.v1"
EXECUTIONS = "mutation.executions.v1"
SIDE_EFFECTS = "mutation.side-effects.v1"
DEAD_LETTER = "mutation.dead-letter.v1"
EXECUTE = "mutation.internal.execute.v1"

ALL_TOPICS: list[str] = [REQUESTS, APPROVALS, COMMANDS, DECISIONS, EXECUTIONS, SIDE_EFFECTS, DEAD_LETTER, EXECUTE]
