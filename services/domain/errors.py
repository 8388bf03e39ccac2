"""Domain errors. Each becomes a decision or a refusal, never a crash."""


class DomainError(Exception):
    """Root of every domain error; carries a machine-readable code."""

    code = "domain_error"

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code:
            self.code = code


class InvalidTransition(DomainError):
    """A status change the transition table does not allow."""

    code = "invalid_transition"


class MutationNotApplicable(DomainError):
    """The mutation does not apply to the state (bad path, failed JSON Patch test, ...)."""

    code = "mutation_not_applicable"


class InvalidPayload(DomainError):
    """The payload does not fit the mutation type."""

    code = "invalid_payload"


class PolicyConfigError(Exception):
    """A policy file that cannot be loaded; raised at start-up, not per message."""
