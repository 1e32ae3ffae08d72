"""Between validation and request building: the runner-built parts of a request.

Most actions send their validated input as is.  A few are declared with a named,
code-defined transform (``transform:`` in the manifest), a versioned ``update:``, a
``bodyView`` (runner-side body paging and Markdown, ``bodyview.py``) or a
``markdownBody`` (Markdown converted to storage, ``edits.py``).  Each kind is one
:class:`Transform`: the read it needs first, the request it composes, what it adds to
the result once the answer is in, and the read a 409 conflict makes.  There is no
templating: each name maps to a class in this package, chosen once per action
(:func:`transform_for`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from harbor_confluence.editing.truncation import cut
from harbor_confluence.errors import InputError, Violation

from . import bodyview, cql, edits, updates
from .flow import Block, Flow, Send, Sleep
from .transport import SendFailure as SendFailureType
from .updates import Composition, ReadOutcome, ReadPlan

if TYPE_CHECKING:
    import httpx

    from .manifest import Action
    from .request import PreparedRequest
    from .summary import Result, Summarizer
    from .transport import SendFailure

__all__ = [
    "Composition",
    "ReadOutcome",
    "ReadPlan",
    "Reader",
    "Transform",
    "compose",
    "sent_input",
    "transform_for",
]

LABEL_PREFIX = "global"

# The reads runner-built actions make for themselves (policy-checked like any call).
SPACES_READ, SPACE_READ, TEMPLATE_READ = "list-spaces", "get-space", "get-template"
TASK_READ, ATTACHMENT_READ = "get-long-task", "get-attachment"
DEFAULT_TREE_DEPTH = 3
# Answers above this many bytes are presented in a worker thread under the async driver.
HEAVY_BYTES = 64 * 1024
# A long task is polled for at most this long, at growing intervals (seconds).
TASK_WAIT, TASK_POLL_FIRST, TASK_POLL_MAX = 60.0, 0.25, 2.0
# Downloads: files above the cap are refused before a byte is fetched; text is bounded.
DOWNLOAD_CAP = 1024 * 1024
TEXT_LIMIT = 100_000
TEXT_TYPES = frozenset({
    "application/json", "text/csv", "application/csv", "text/markdown", "application/xml",
    "application/x-yaml", "application/yaml",
})  # fmt: skip

# What a transform's ``finish`` may ask of the runner: one more read (policy-checked like
# any call), as a flow.  ``reader(caller, plan)`` yields the read's steps.
Reader = Callable[[str, ReadPlan], Flow[ReadOutcome]]


class Transform:
    """The runner's part of one kind of action.  Stateless: one instance serves them all.

    ``heavy_compose``/``heavy_present``: this composition or presentation converts, edits
    or diffs a whole page body, so the async driver runs it in a worker thread (a thread
    hop costs more than the light ones take).
    """

    def heavy_compose(self, action: Action, clean: dict[str, Any]) -> bool:
        return False

    def heavy_present(self, prepared: PreparedRequest, response: httpx.Response) -> bool:
        return False

    def summarize(
        self,
        summarizer: Summarizer,
        prepared: PreparedRequest,
        response: httpx.Response | SendFailure,
    ) -> Result:
        """The answer as a result (the manifest's summary of its JSON)."""
        return summarizer.result(response)

    def read_plan(self, action: Action, clean: dict[str, Any]) -> ReadPlan | None:
        """The read this action needs before its request can be built, if any."""
        return None

    def compose(self, action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
        """The request input as it will be sent (``{path, query, body}``)."""
        return Composition(clean)

    def present(
        self, action: Action, prepared: PreparedRequest, response: httpx.Response, result: Result
    ) -> Result:
        """What the summary alone cannot say, added to a successful result."""
        return result

    def finish(
        self,
        read: Reader,
        action: Action,
        prepared: PreparedRequest,
        response: httpx.Response,
        result: Result,
    ) -> Flow[Result]:
        """A successful result as the agent gets it; may read more (a task poll)."""
        if self.heavy_present(prepared, response):
            presented: Result = yield Block(self.present, (action, prepared, response, result))
            return presented
        return self.present(action, prepared, response, result)

    def conflict_read(self, action: Action, path: dict[str, str]) -> ReadPlan | None:
        """After a 409 on a versioned write: the read that says who changed the resource."""
        return None


class Plain(Transform):
    """Validated input, sent as is."""


class Update(Transform):
    """A versioned update: read the current version (and body, for an edit), send +1."""

    def heavy_compose(self, action: Action, clean: dict[str, Any]) -> bool:
        return True  # the block review (and any edit) works on the whole stored body

    def read_plan(self, action: Action, clean: dict[str, Any]) -> ReadPlan | None:
        assert action.update is not None
        needs_body = edits.needs_current(action, clean)
        return updates.update_read_plan(action.update, clean, needs_body=needs_body)

    def compose(self, action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
        edited = edits.edited_body(action, clean, read)
        if edited is None:
            return updates.compose_update(action, clean, read)
        return updates.compose_update(
            action, clean, read, body=edited.body, extra=edited.review,
            losses=edited.losses, old_view=edited.old_view,
        )  # fmt: skip

    def conflict_read(self, action: Action, path: dict[str, str]) -> ReadPlan | None:
        assert action.update is not None
        return ReadPlan(action.update.read, {"path": path}, required=False)


class CqlSearch(Transform):
    """Typed search criteria, composed into one CQL query (``cql.py``)."""

    def compose(self, action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
        try:
            request = cql.search_request(clean)
        except cql.CqlInputError as exc:
            raise InputError(action.name, [exc.violation]) from None
        return Composition(request, {"cql": request["query"]["cql"]})


class LabelList(Transform):
    """``{labels: [names]}`` -> the v1 LabelCreateArray ``[{prefix, name}, ...]``."""

    def compose(self, action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
        names = (clean.get("body") or {}).get("labels") or []
        body = [{"prefix": LABEL_PREFIX, "name": name} for name in names]
        return Composition({"path": dict(clean.get("path") or {}), "body": body})


class PageDiff(Transform):
    """Read the older version first; the request reads the newer; the result is the diff."""

    def heavy_present(self, prepared: PreparedRequest, response: httpx.Response) -> bool:
        return True

    def read_plan(self, action: Action, clean: dict[str, Any]) -> ReadPlan | None:
        return updates.page_diff_plan(clean)

    def compose(self, action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
        return updates.compose_page_diff(clean, read)

    def present(
        self, action: Action, prepared: PreparedRequest, response: httpx.Response, result: Result
    ) -> Result:
        try:
            data = response.json()
        except ValueError:
            return result
        diff = updates.page_diff_summary(prepared.local, data, action.summary.max_chars)
        return replace(result, summary={**(result.summary or {}), **diff})


class BodyView(Transform):
    """A page body handed out whole, in marked pieces, or as Markdown (``bodyview.py``)."""

    def heavy_present(self, prepared: PreparedRequest, response: httpx.Response) -> bool:
        view = prepared.local.get("body_view") or {}
        return view.get("format") == "markdown" or len(response.content) > HEAVY_BYTES

    def compose(self, action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
        return bodyview.compose_read(action, clean)

    def present(
        self, action: Action, prepared: PreparedRequest, response: httpx.Response, result: Result
    ) -> Result:
        summary = bodyview.present(action, prepared.local, response, result.summary)
        return replace(result, summary=summary)


class MarkdownCreate(Transform):
    """A create whose body may be Markdown, converted to storage (``edits.py``)."""

    def heavy_compose(self, action: Action, clean: dict[str, Any]) -> bool:
        return edits.needs_current(action, clean)  # Markdown to convert

    def compose(self, action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
        return edits.compose_create(action, clean)


def _first_result(read: ReadOutcome) -> dict[str, Any] | None:
    data = read.data if isinstance(read.data, dict) else {}
    results = data.get("results")
    if isinstance(results, list) and results and isinstance(results[0], dict):
        return results[0]
    return None


class SpaceKeyCreate(MarkdownCreate):
    """A create that names its space by key: the runner reads the space's id first
    (``list-spaces``, policy-checked like any call) and sends ``spaceId``."""

    def read_plan(self, action: Action, clean: dict[str, Any]) -> ReadPlan | None:
        body = clean.get("body") or {}
        if "spaceKey" not in body:  # the schema takes exactly one of spaceId and spaceKey
            return None
        return ReadPlan(SPACES_READ, {"query": {"keys": [body["spaceKey"]], "limit": 1}})

    def compose(self, action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
        body = dict(clean.get("body") or {})
        key = body.pop("spaceKey", None)
        if key is not None:
            space = _first_result(read)
            if space is None or space.get("key") != key:
                raise InputError(
                    action.name,
                    [Violation("body.spaceKey", "exists", f"no space has the key {key!r}")],
                )
            body["spaceId"] = str(space["id"])
        return super().compose(action, {**clean, "body": body}, read)


class TemplateCreate(Transform):
    """A page created from a template: the runner reads the template's storage body
    (``get-template``) and creates the page with it (``POST /pages``)."""

    def read_plan(self, action: Action, clean: dict[str, Any]) -> ReadPlan | None:
        template = (clean.get("body") or {})["templateId"]
        return ReadPlan(TEMPLATE_READ, {"path": {"contentTemplateId": template}})

    def compose(self, action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
        agent = dict(clean.get("body") or {})
        template = read.data if isinstance(read.data, dict) else {}
        storage = ((template.get("body") or {}).get("storage") or {}).get("value")
        if not isinstance(storage, str):
            raise InputError(action.name, [Violation(
                "body.templateId", "template", "the template has no storage body to copy"
            )])  # fmt: skip
        body = {k: v for k, v in agent.items() if k != "templateId"}
        body.setdefault("status", "current")
        body["body"] = {"representation": "storage", "value": storage}
        review = {"template": {"id": agent["templateId"], "name": template.get("name")}}
        return Composition({"body": body}, review)


class SpaceTree(Transform):
    """A space's page tree: the input names the space (``path.id``); the runner reads the
    space's homepage id, then lists the homepage's descendants to a bounded depth."""

    def read_plan(self, action: Action, clean: dict[str, Any]) -> ReadPlan | None:
        return ReadPlan(SPACE_READ, {"path": {"id": clean["path"]["id"]}})

    def compose(self, action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
        query = dict(clean.get("query") or {})
        space = read.data if isinstance(read.data, dict) else {}
        home = space.get("homepageId")
        if not home:
            raise InputError(action.name, [Violation(
                "path.id", "homepage", "the space has no homepage to start the tree at"
            )])  # fmt: skip
        query.setdefault("depth", DEFAULT_TREE_DEPTH)
        return Composition({"path": {"id": str(home)}, "query": query}, {"homepage": str(home)})


class UserSearch(Transform):
    """Typed user criteria composed into the CQL of ``/search/user`` (never raw CQL)."""

    def compose(self, action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
        query = dict(clean.get("query") or {})
        clauses = ["type=user"]
        try:
            if (name := query.pop("name", None)) is not None:
                clauses.append(f"user.fullname~{cql.literal('query.name', name)}")
            if (account := query.pop("account-id", None)) is not None:
                clauses.append(f"user.accountid={cql.literal('query.account-id', account)}")
        except cql.CqlInputError as exc:
            raise InputError(action.name, [exc.violation]) from None
        query["cql"] = " AND ".join(clauses)
        return Composition({"query": query}, {"cql": query["cql"]})


class TaskPoll(Transform):
    """A long-running copy: once Confluence accepted it, poll its task (``get-long-task``)
    until it ends or ``TASK_WAIT`` seconds pass; the result says which."""

    def finish(
        self,
        read: Reader,
        action: Action,
        prepared: PreparedRequest,
        response: httpx.Response,
        result: Result,
    ) -> Flow[Result]:
        try:
            accepted = response.json()
        except ValueError:
            return result
        task = accepted.get("id") if isinstance(accepted, dict) else None
        if not task:
            return result
        waited, interval = 0.0, TASK_POLL_FIRST
        while True:
            plan = ReadPlan(TASK_READ, {"path": {"id": str(task)}}, required=False)
            outcome = yield from read(action.name, plan)
            state = outcome.data if isinstance(outcome.data, dict) else {}
            problem = outcome.problem
            if state.get("finished") or problem is not None or waited >= TASK_WAIT:
                summary = {
                    **(result.summary or {}),
                    **_task_summary(str(task), state, problem, waited),
                }
                return replace(result, summary=summary)
            yield Sleep(interval)
            waited += interval
            interval = min(interval * 2, TASK_POLL_MAX)


def _task_summary(
    task: str, state: dict[str, Any], problem: str | None, waited: float
) -> dict[str, Any]:
    out: dict[str, Any] = {"taskId": task, "finished": bool(state.get("finished"))}
    for key in ("successful", "percentageComplete"):
        if key in state:
            out[key] = state[key]
    messages = [m.get("translation") or m.get("key") for m in state.get("messages") or []
                if isinstance(m, dict)]  # fmt: skip
    if messages:
        out["messages"] = [m for m in messages if m][:5]
    if problem is not None:
        out["message"] = f"the task was not polled to its end: {problem}"
    elif not out["finished"]:
        out["message"] = f"still running after {waited:.0f} s; poll it with get-long-task id={task}"
    return out


class AttachmentDownload(Transform):
    """An attachment's bytes, capped: the runner reads its size first and refuses a file
    over ``DOWNLOAD_CAP`` before downloading; a text file comes back as bounded text,
    anything else as metadata and a SHA-256 digest."""

    def read_plan(self, action: Action, clean: dict[str, Any]) -> ReadPlan | None:
        attachment = (clean.get("path") or {})["attachmentId"]
        return ReadPlan(ATTACHMENT_READ, {"path": {"id": attachment}})

    def compose(self, action: Action, clean: dict[str, Any], read: ReadOutcome) -> Composition:
        meta = read.data if isinstance(read.data, dict) else {}
        size = meta.get("fileSize")
        if isinstance(size, int) and size > DOWNLOAD_CAP:
            raise InputError(action.name, [Violation(
                "path.attachmentId", "download_cap",
                f"the file is {size:,} bytes, over the download cap of {DOWNLOAD_CAP:,} "
                "bytes; nothing was downloaded",
            )])  # fmt: skip
        local = {k: meta[k] for k in ("title", "mediaType", "fileSize") if k in meta}
        return Composition(clean, local=local)

    def summarize(
        self,
        summarizer: Summarizer,
        prepared: PreparedRequest,
        response: httpx.Response | SendFailure,
    ) -> Result:
        """Confluence answers the download route with a redirect to the file on the same
        site: that one redirect is followed (in :meth:`finish`), no other."""
        from .summary import Result

        status = getattr(response, "status_code", None)
        if status in (200, 302):
            return Result(ok=True, action=prepared.action, status=status)
        return summarizer.result(response)

    def finish(
        self,
        read: Reader,
        action: Action,
        prepared: PreparedRequest,
        response: httpx.Response,
        result: Result,
    ) -> Flow[Result]:
        from .summary import Result

        if response.status_code == 302:
            location = _same_site_download(prepared.url, response.headers.get("Location", ""))
            if location is None:
                return Result(ok=False, action=action.name, status=302, error={
                    "type": "redirect", "message": "the download redirected off the tenant's "
                    "download path; not followed",
                })  # fmt: skip
            answer = yield Send(replace(prepared, url=location, body=None, content_type=None))
            if isinstance(answer, SendFailureType) or answer.status_code != 200:
                from .summary import Summarizer

                return Summarizer(action).result(answer)
            response = answer
        return _download_result(action.name, prepared, response)


def _same_site_download(request_url: str, location: str) -> str | None:
    """The redirect's absolute URL when it stays on the request's origin and under its
    site's ``/download/`` path; None otherwise."""
    sent, to = urlsplit(request_url), urlsplit(urljoin(request_url, location))
    if (to.scheme, to.netloc) != (sent.scheme, sent.netloc) or to.fragment:
        return None
    site = sent.path.split("/rest/api/", 1)[0]  # "/wiki", or the gateway's "/ex/.../wiki"
    if not to.path.startswith(site + "/download/") or ".." in to.path.split("/"):
        return None
    return urlunsplit(to)


def _download_result(name: str, prepared: PreparedRequest, response: httpx.Response) -> Result:
    from .summary import Result

    content = response.content
    if len(content) > DOWNLOAD_CAP:
        message = f"the file is over the download cap of {DOWNLOAD_CAP:,} bytes"
        return Result(ok=False, action=name, status=response.status_code,
                      error={"type": "too_large", "message": message})  # fmt: skip
    declared = prepared.local.get("mediaType") or response.headers.get("Content-Type")
    media = str(declared or "application/octet-stream").split(";")[0].strip().lower()
    summary: dict[str, Any] = {
        "title": prepared.local.get("title"),
        "mediaType": media,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    text = _as_text(media, content)
    if text is not None:
        summary["text"] = cut(text, TEXT_LIMIT) if len(text) > TEXT_LIMIT else text
        summary["textTruncated"] = len(text) > TEXT_LIMIT
    return Result(ok=True, action=name, status=response.status_code, summary=summary)


def _as_text(media: str, content: bytes) -> str | None:
    """The file as text, for text types (text/*, JSON, CSV, Markdown) that decode as UTF-8."""
    if not (media.startswith("text/") or media in TEXT_TYPES or media.endswith("+json")):
        return None
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


_NAMED: dict[str, Transform] = {
    "cql-search": CqlSearch(),
    "label-list": LabelList(),
    "page-diff": PageDiff(),
    "space-key": SpaceKeyCreate(),
    "page-from-template": TemplateCreate(),
    "space-tree": SpaceTree(),
    "user-search": UserSearch(),
    "task-poll": TaskPoll(),
    "attachment-download": AttachmentDownload(),
}
_UPDATE, _BODY_VIEW, _MARKDOWN, _PLAIN = Update(), BodyView(), MarkdownCreate(), Plain()


def transform_for(action: Action) -> Transform:
    """The one transform this action's request goes through (chosen once, at compile).

    ``page-edit`` runs inside its versioned update (it computes the body: edits.py).
    """
    if action.update is not None:
        return _UPDATE
    if action.transform is not None and action.transform in _NAMED:
        return _NAMED[action.transform]
    if action.body_view is not None:
        return _BODY_VIEW
    if action.markdown_body is not None:
        return _MARKDOWN
    return _PLAIN


def compose(action: Action, clean: dict[str, Any], read: ReadOutcome | None = None) -> Composition:
    """The request input as it will be sent, given the read's outcome (none: no read)."""
    return transform_for(action).compose(action, clean, read or ReadOutcome())


def sent_input(action: Action, clean: dict[str, Any]) -> dict[str, Any]:
    """A read's validated input as sent, when the runner makes the read for itself (no
    runner-side parameters reach Confluence)."""
    if action.body_view is None:
        return clean
    return {**clean, "query": bodyview.sent_query(action, dict(clean.get("query") or {}))}
