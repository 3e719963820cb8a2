"""Bearer tokens that scope a supervisor to their teams, configured from the environment.

`CALLQ_API_TOKENS` = ``token1:teamA,teamB;token2:*`` (``*`` = every team, an admin). Tokens are
kept only as SHA-256 digests and compared in constant time; they never appear in logs or errors.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

TOKENS_ENV = "CALLQ_API_TOKENS"
ALL_TEAMS = "*"
REALM = "callq"
BEARER_SCHEME = "supervisor token"  # the name OpenAPI gives the scheme


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's position in the configuration (never the token) and its teams."""

    label: str  # "token-2": safe to log
    teams: frozenset[str] | None  # None = every team (admin)

    @property
    def is_admin(self) -> bool:
        return self.teams is None

    def allows(self, team: str | None) -> bool:
        """Whether this principal may see `team`; unknown (None) teams are for admins only."""
        if self.teams is None:
            return True
        return team is not None and team in self.teams

    def visible(self, teams: list[str]) -> list[str]:
        """The subset of `teams` this principal may see, order kept."""
        return [team for team in teams if self.allows(team)]

    def require_team(self, team: str | None) -> None:
        """403 unless `team` is in scope."""
        if not self.allows(team):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this token does not cover that team")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class TokenAuth:
    """The configured tokens (as digests) and their scopes; empty = every protected call is a 401."""

    entries: tuple[tuple[bytes, Principal], ...] = ()

    @classmethod
    def parse(cls, spec: str) -> TokenAuth:
        """Parse ``token:teamA,teamB;token2:*``; errors name the entry's position, never the token."""
        entries: list[tuple[bytes, Principal]] = []
        seen: set[bytes] = set()
        for position, raw in enumerate(part.strip() for part in spec.split(";")):
            if not raw:
                continue
            number = position + 1
            token, sep, scope = raw.partition(":")
            token = token.strip()
            if not sep or not token:
                raise ValueError(f"{TOKENS_ENV}: entry {number} must look like TOKEN:team1,team2 or TOKEN:*")
            if any(char.isspace() for char in token):
                raise ValueError(f"{TOKENS_ENV}: entry {number}: a token may not contain spaces")
            if not all("!" <= char <= "~" for char in token):  # a header carries ASCII: no client could send it
                raise ValueError(f"{TOKENS_ENV}: entry {number}: a token may hold only printable ASCII characters")
            teams = [team.strip() for team in scope.split(",") if team.strip()]
            if not teams:
                raise ValueError(f"{TOKENS_ENV}: entry {number} names no team (use * for all teams)")
            digest = _digest(token)
            if digest in seen:
                raise ValueError(f"{TOKENS_ENV}: entry {number} repeats an earlier token")
            seen.add(digest)
            scoped = None if ALL_TEAMS in teams else frozenset(teams)
            entries.append((digest, Principal(label=f"token-{number}", teams=scoped)))
        return cls(entries=tuple(entries))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TokenAuth:
        """Read `CALLQ_API_TOKENS` from `environ` (default: the process environment)."""
        env = os.environ if environ is None else environ
        return cls.parse(env.get(TOKENS_ENV, ""))

    def lookup(self, token: str) -> Principal | None:
        """The principal holding `token`; every entry is compared, so timing says nothing."""
        presented = _digest(token)
        found: Principal | None = None
        for digest, principal in self.entries:
            if hmac.compare_digest(presented, digest):
                found = principal
        return found

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal for an ``Authorization: Bearer …`` header, else a 401 with WWW-Authenticate."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a bearer token is required",
                headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
            )
        principal = self.lookup(token)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "the bearer token is not valid",
                headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token"'},
            )
        return principal


# Declared so that OpenAPI shows the bearer scheme; the check itself is `TokenAuth.authenticate`.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name=BEARER_SCHEME,
    description=f"A token from {TOKENS_ENV}; it scopes the caller to its teams (`*` = all teams).",
)


async def require_principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)
) -> Principal:
    """FastAPI dependency: the caller's principal, using the app's configured `TokenAuth`.

    `async` on purpose: a few microseconds of hashing, so a thread-pool hop would cost more.
    """
    auth: TokenAuth = request.app.state.token_auth
    header = f"Bearer {credentials.credentials}" if credentials is not None else None
    return auth.authenticate(header)
