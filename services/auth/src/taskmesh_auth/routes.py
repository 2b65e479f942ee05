"""HTTP routes of the auth API: parse, call the service, map domain errors to problems."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Header, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from taskmesh_common.principals import CurrentPrincipal
from taskmesh_common.problems import Problem

from taskmesh_auth import service
from taskmesh_auth.downstream import OwnerPurger
from taskmesh_auth.issuer import TokenIssuer
from taskmesh_auth.keys import KeyStore
from taskmesh_auth.models import (
    AudienceNotAllowedError,
    AuthError,
    DownstreamUnavailableError,
    EmailTakenError,
    InvalidClientError,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    RevocationUnavailableError,
    ThrottledError,
    UserNotFoundError,
    VersionMismatchError,
    WeakPasswordError,
)
from taskmesh_auth.passwords import Hasher
from taskmesh_auth.repository import Repository
from taskmesh_auth.revocation import NotBefore
from taskmesh_auth.schemas import (
    JwksOut,
    LoginIn,
    PasswordChangeIn,
    PasswordIn,
    ProfileUpdateIn,
    RefreshIn,
    RegisterIn,
    ServiceTokenOut,
    TokenPairOut,
    UserOut,
)
from taskmesh_auth.throttle import IPNetwork, LoginThrottle, client_address


def _state(name: str) -> Any:
    def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    return Depends(dependency)


Repo = Annotated[Repository, _state("repo")]
PasswordHasher = Annotated[Hasher, _state("hasher")]
Throttle = Annotated[LoginThrottle, _state("throttle")]
SessionIssuing = Annotated[service.Sessions, _state("sessions")]
Revocation = Annotated[NotBefore, _state("not_before")]
Purger = Annotated[OwnerPurger, _state("purger")]
Issuer = Annotated[TokenIssuer, _state("issuer")]
Keys = Annotated[KeyStore, _state("keys")]
TrustedProxies = Annotated[list[IPNetwork], _state("trusted_proxies")]

bearer = HTTPBearer(auto_error=False, description="An access token issued by this service.")
NO_STORE = {"Cache-Control": "no-store"}

router = APIRouter(prefix="/v1")
wellknown = APIRouter()


async def _user_id(
    principal: CurrentPrincipal,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> uuid.UUID:
    if principal.kind != "user":
        raise Problem(403, "This endpoint is for user tokens.")
    try:
        return uuid.UUID(principal.subject)
    except ValueError as exc:
        raise Problem(403, "This endpoint is for user tokens.") from exc


UserId = Annotated[uuid.UUID, Depends(_user_id)]


def _etag(version: int) -> str:
    return f'"{version}"'


def _tags(header: str) -> list[str]:
    return [tag.strip().removeprefix("W/").strip('"') for tag in header.split(",") if tag.strip()]


def problem_for(exc: AuthError) -> Problem:
    """The problem a domain error maps to."""
    match exc:
        case ThrottledError():
            return Problem(
                429,
                "Too many login attempts; try again later.",
                headers={"Retry-After": str(exc.retry_after)},
            )
        case InvalidCredentialsError():
            return Problem(401, "Invalid email or password.")
        case InvalidRefreshTokenError():
            return Problem(401, "The refresh token is invalid, expired or revoked.")
        case EmailTakenError():
            return Problem(409, "An account with this email already exists.")
        case WeakPasswordError():
            return Problem(422, str(exc), title="Weak password")
        case UserNotFoundError():
            return Problem(
                401,
                "The account no longer exists.",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        case VersionMismatchError():
            return Problem(412, "The profile changed since you read it; fetch it again.")
        case InvalidClientError():
            return Problem(
                401,
                "Unknown client or wrong client secret.",
                headers={"WWW-Authenticate": 'Basic realm="taskmesh-auth"'},
                error="invalid_client",
            )
        case AudienceNotAllowedError():
            return Problem(
                400, "This client may not ask for that audience.", error="invalid_target"
            )
        case DownstreamUnavailableError() | RevocationUnavailableError():
            return Problem(
                503, "A dependency is unavailable; try again.", headers={"Retry-After": "5"}
            )
    return Problem(400, "The request could not be processed.")


def _client_ip(request: Request, trusted: list[IPNetwork]) -> str:
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.get("x-forwarded-for"), trusted)


# OpenAPI links let schemathesis' stateful phase chain register -> login -> refresh -> logout.
_SESSION_LINKS = {
    "Refresh": {
        "operationId": "refreshSession",
        "requestBody": {"refresh_token": "$response.body#/refresh_token"},
    },
    "Logout": {
        "operationId": "logout",
        "requestBody": {"refresh_token": "$response.body#/refresh_token"},
    },
}


@router.post(
    "/users",
    status_code=201,
    summary="Register an account",
    responses={
        201: {
            "description": "The new account",
            "links": {
                "Login": {
                    "operationId": "login",
                    "requestBody": {
                        "email": "$request.body#/email",
                        "password": "$request.body#/password",
                    },
                }
            },
        }
    },
)
async def register(body: RegisterIn, repo: Repo, hasher: PasswordHasher) -> UserOut:
    user = await service.register(
        repo,
        hasher=hasher,
        email=body.email,
        display_name=body.display_name,
        password=body.password,
    )
    return UserOut.of(user)


@router.post(
    "/sessions",
    summary="Log in: exchange email and password for a token pair",
    operation_id="login",
    responses={200: {"description": "A token pair", "links": _SESSION_LINKS}},
)
async def login(
    body: LoginIn,
    request: Request,
    response: Response,
    repo: Repo,
    hasher: PasswordHasher,
    throttle: Throttle,
    sessions: SessionIssuing,
    trusted: TrustedProxies,
) -> TokenPairOut:
    pair = await service.login(
        repo,
        hasher=hasher,
        throttle=throttle,
        sessions=sessions,
        email=body.email,
        password=body.password,
        client_ip=_client_ip(request, trusted),
    )
    response.headers.update(NO_STORE)
    return TokenPairOut.of(pair)


@router.post(
    "/sessions/refresh",
    summary="Rotate a refresh token for a new token pair",
    operation_id="refreshSession",
    responses={200: {"description": "A rotated token pair", "links": _SESSION_LINKS}},
)
async def refresh(
    body: RefreshIn, response: Response, repo: Repo, sessions: SessionIssuing
) -> TokenPairOut:
    pair = await service.refresh(repo, sessions=sessions, refresh_token=body.refresh_token)
    response.headers.update(NO_STORE)
    return TokenPairOut.of(pair)


@router.post(
    "/sessions/logout",
    status_code=204,
    summary="End the session of a refresh token",
    operation_id="logout",
)
async def logout(body: RefreshIn, repo: Repo) -> Response:
    await service.logout(repo, refresh_token=body.refresh_token)
    return Response(status_code=204)


@router.post("/sessions/logout-all", status_code=204, summary="End every session of the caller")
async def logout_all(user_id: UserId, repo: Repo, not_before: Revocation) -> Response:
    await service.logout_all(repo, not_before=not_before, user_id=user_id)
    return Response(status_code=204)


@router.get(
    "/me",
    summary="The caller's account",
    response_model=UserOut,
    responses={304: {"description": "Not modified"}},
)
async def get_me(
    user_id: UserId,
    repo: Repo,
    response: Response,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Any:
    user = await service.profile(repo, user_id=user_id)
    etag = _etag(user.version)
    if if_none_match is not None and (
        if_none_match.strip() == "*" or str(user.version) in _tags(if_none_match)
    ):
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    return UserOut.of(user)


@router.patch(
    "/me",
    summary="Change the caller's display name (If-Match required)",
    responses={412: {"description": "Stale If-Match"}, 428: {"description": "If-Match missing"}},
)
async def patch_me(
    body: ProfileUpdateIn,
    user_id: UserId,
    repo: Repo,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> UserOut:
    if if_match is None:
        raise Problem(428, "Send If-Match with the ETag of GET /v1/me.")
    tags = _tags(if_match)
    if "*" in tags:
        version = (await service.profile(repo, user_id=user_id)).version
    else:
        versions = [int(tag) for tag in tags if tag.isdigit() and len(tag) < 10]
        if not versions:
            raise Problem(412, "The profile changed since you read it; fetch it again.")
        version = versions[0]
    user = await service.rename(
        repo, user_id=user_id, display_name=body.display_name, expected_version=version
    )
    response.headers["ETag"] = _etag(user.version)
    return UserOut.of(user)


@router.post("/me/password", status_code=204, summary="Change the caller's password")
async def change_password(
    body: PasswordChangeIn,
    request: Request,
    user_id: UserId,
    repo: Repo,
    hasher: PasswordHasher,
    throttle: Throttle,
    not_before: Revocation,
    trusted: TrustedProxies,
) -> Response:
    await service.change_password(
        repo,
        hasher=hasher,
        throttle=throttle,
        not_before=not_before,
        user_id=user_id,
        current_password=body.current_password,
        new_password=body.new_password,
        client_ip=_client_ip(request, trusted),
    )
    return Response(status_code=204)


@router.delete("/me", status_code=204, summary="Delete the caller's account and data")
async def delete_me(
    body: PasswordIn,
    request: Request,
    user_id: UserId,
    repo: Repo,
    hasher: PasswordHasher,
    throttle: Throttle,
    not_before: Revocation,
    purger: Purger,
    trusted: TrustedProxies,
) -> Response:
    await service.delete_account(
        repo,
        hasher=hasher,
        throttle=throttle,
        not_before=not_before,
        purger=purger,
        user_id=user_id,
        password=body.password,
        client_ip=_client_ip(request, trusted),
    )
    return Response(status_code=204)


@router.post("/oauth/token", summary="Client-credentials grant for service clients")
async def oauth_token(
    grant_type: Annotated[Literal["client_credentials"], Form()],
    client_id: Annotated[str, Form(min_length=1, max_length=200)],
    client_secret: Annotated[str, Form(min_length=1, max_length=512)],
    audience: Annotated[str, Form(min_length=1, max_length=200)],
    issuer: Issuer,
    response: Response,
) -> ServiceTokenOut:
    token = await service.client_credentials(
        issuer=issuer, client_id=client_id, client_secret=client_secret, audience=audience
    )
    response.headers.update(NO_STORE)
    return ServiceTokenOut(
        access_token=token.access_token, expires_in=token.expires_in, scope=token.scope
    )


@wellknown.get("/.well-known/jwks.json", summary="Public keys that verify access tokens")
async def jwks(keys: Keys) -> JwksOut:
    return JwksOut.model_validate(await keys.jwks())
