"""The documents on a referral's page: its files (names decrypted by the referrals API, which
audits the listing), each with its state, its author's organisation and its time in the
reader's zone; what the upload form needs; the form's one file; the API's refusals said in
the reader's language."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from services.dashboard import conversation, labels
from services.dashboard.node_api import ApiRefused, NodeApi
from shared import i18n
from shared.i18n import N_

REFERRALS = "/api/v1/referrals"
STATE = {
    "on_its_way": N_("On its way"),
    "arrived": N_("Arrived, verified"),
    "refused": N_("Refused: it did not verify"),
    "erased": N_("Erased"),
}
TYPE = {
    "application/pdf": N_("PDF document"),
    "image/jpeg": N_("JPEG image"),
    "image/png": N_("PNG image"),
    "text/plain": N_("Text"),
}
SENT = N_(
    "File attached. The other organisation receives it as soon as its node is reachable, "
    "and only once it is verified there."
)
NO_FILE = N_("Choose a file first.")
REASONS = (
    ("empty", N_("The file is empty.")),
    ("too large", N_("The file is too large: at most %(count)s MB.")),
    ("does not match", N_("The file's content does not match its type.")),
    ("not allowed", N_("This type of file is not allowed: PDF, JPEG, PNG or text only.")),
    ("needs a name", N_("The file needs a name.")),
)


@dataclass(frozen=True)
class File:
    attachment_id: str
    name: str | None
    kind: str
    size: str
    by: str
    at: str
    at_iso: str
    state: str
    state_code: str
    downloadable: bool
    mine: bool


@dataclass(frozen=True)
class Files:
    files: list[File] = field(default_factory=list)
    may_attach: bool = False
    max_mb: int = 10


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} kB"
    return f"{size} B"


def shown(lang: str, item: dict[str, Any], orgs: dict[str, str]) -> File:
    gettext = i18n.translations(lang).gettext
    org = str(item.get("by_org") or "")
    role = labels.word(conversation.ROLE, item.get("by_role"), lang)
    state = str(item.get("state") or "")
    mine = bool(item.get("mine"))
    name = item.get("filename")
    return File(
        attachment_id=str(item.get("attachment_id") or ""),
        name=name if isinstance(name, str) else None,
        kind=labels.word(TYPE, item.get("content_type"), lang) if item.get("content_type") else "",
        size=_size(int(item.get("size") or 0)),
        by=gettext(conversation.BY) % {"org": orgs.get(org, org), "role": role},
        at=labels.moment(item.get("at"), lang),
        at_iso=str(item.get("at") or ""),
        state=labels.word(STATE, state, lang),
        state_code=state,
        downloadable=state == "arrived" or (mine and state == "on_its_way"),
        mine=mine,
    )


async def files(api: NodeApi, referral_id: str, lang: str, orgs: dict[str, str]) -> Files:
    try:
        found = await api.get(f"{REFERRALS}/{referral_id}/attachments")
    except ApiRefused:
        return Files()
    if not isinstance(found, dict):
        return Files()
    return Files(
        files=[shown(lang, f, orgs) for f in found.get("attachments") or [] if isinstance(f, dict)],
        may_attach=bool(found.get("may_attach")),
        max_mb=int(int(found.get("max_bytes") or 0) // (1024 * 1024)) or 10,
    )


async def uploaded(request: Request) -> UploadFile | None:
    """The form's one file (kept in memory: ``shared.intake`` bounds the body and turns off
    Starlette's spooling to a temporary file), or None."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return None
    try:
        form = await request.form(max_files=1, max_fields=4)
    except MultiPartException:
        return None
    found = form.get("file")
    return found if isinstance(found, UploadFile) else None


def refusal(lang: str, detail: str, max_mb: float) -> labels.FieldError:
    gettext = i18n.translations(lang).gettext
    for needle, message in REASONS:
        if needle in detail:
            return labels.FieldError(gettext(message) % {"count": f"{max_mb:g}"})
    return labels.field_error(lang, detail)
