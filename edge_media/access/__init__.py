"""Who may reach the hub through its API: users, their hashed tokens, and what each one may see.

Owns the ``users`` table of the hub's database (created here, written only here). A token is shown once, when
the user is added, and only its sha256 is stored. Knows nothing of HTTP: the API turns a bearer token into a
:class:`Principal` through :class:`UserStore` and asks the principal which sources it may see.
"""

from .principal import Principal, sources_of
from .tokens import hash_token, new_token
from .users import ROLES, User, UserError, UserStore

__all__ = ["ROLES", "Principal", "User", "UserError", "UserStore", "hash_token", "new_token", "sources_of"]
