"""Who may act on which agent: the scope rule of access/model.py's roles, as one pure function
the web's API asks before it acts (and a test can ask without a server)."""

from __future__ import annotations

from collections.abc import Set

from acdbridge.access.model import Account, Role


def scope_problem(account: Account, agent: str, agent_queues: Set[str]) -> str:
    """ "" when `account` may act on `agent` (who serves `agent_queues`), else why not."""
    if account.role == Role.ADMIN:
        return ""
    if account.role == Role.SUPERVISOR:
        if set(account.queues) & set(agent_queues):
            return ""
        mine = ", ".join(account.queues) or "none"
        return f"agent {agent!r} is not in your queues ({mine}): a supervisor acts on their own queues only"
    if account.role == Role.AGENT:
        if account.agent == agent:
            return ""
        return f"you may act on your own desk only ({account.agent!r}), not on {agent!r}"
    return "a viewer may only look: acting on agents needs the agent, supervisor or admin role"
