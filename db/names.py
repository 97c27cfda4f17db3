"""Run names are unique in a workspace's index: the one rule every front end meets at the Store.

A name someone chose (`ddae train --name`, the Launch form's Name field, `ddae runs rename`, the Runs table)
is refused when another run has it, with a free one offered; a name the program made up (a default, a
sweep's or the demo's) is numbered instead: `name (2)`, `name (3)`, ... Folders that arrive on their own
(the ingester, a reindex, a copied workspace) keep the names they carry, so an older workspace whose runs
share a name still opens whole.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ddae_core.rundir import UserError

from .models import Run


class NameTaken(UserError, ValueError):
    """A run name another run of the workspace already has."""

    def __init__(self, name: str, owner: str, suggestion: str):
        self.name, self.owner, self.suggestion = name, owner, suggestion
        super().__init__(f"“{name}” is already the name of run {owner}; choose another name, such as “{suggestion}”.")


def name_owner(session: Session, name: str, other_than: str | None = None) -> str | None:
    """The id of the run (other than `other_than`) named exactly `name`, or None."""
    query = select(Run.id).where(Run.name == name.strip()).order_by(Run.id).limit(1)
    if other_than is not None:
        query = query.where(Run.id != other_than)
    return session.scalars(query).first()


def free_name(session: Session, name: str) -> str:
    """`name`, or `name (2)`, `name (3)`, ... whichever no run has yet."""
    name = name.strip()
    candidate, n = name, 1
    while name_owner(session, candidate) is not None:
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def check_free(session: Session, name: str, other_than: str | None = None) -> None:
    """NameTaken when a run other than `other_than` is named `name`."""
    owner = name_owner(session, name, other_than)
    if owner is not None:
        raise NameTaken(name.strip(), owner, free_name(session, name))
