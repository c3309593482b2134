"""Admin pages for the fleet: nodes (state badges, running runs) and node groups.

Nodes are registered by the workers themselves: an operator with the model
permission changes only their labels and draining; node groups are edited freely
by those allowed. Runs are shown only as far as the user may view them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from scheduler_app import access, nodes, selectors
from scheduler_app.admin_pages import run_url
from scheduler_app.models import Node, NodeGroup, Run

STATE_COLOURS = {nodes.ONLINE: "#2e7d32", nodes.OFFLINE: "#c62828", nodes.DRAINING: "#ef6c00"}
RUNNING_SHOWN = 20


@dataclass
class Page:
    """One request's page of nodes: the viewer (whose access rules limit the running runs
    shown) and, for a list, every row's state and running runs read at once."""

    viewer: Any
    states: dict[int, nodes.Seen] = field(default_factory=dict)
    running: dict[str, list[Run]] = field(default_factory=dict)
    loaded: bool = False  # whether ``running`` holds the whole page

    def load(self, rows: Iterable[Node]) -> None:
        """The state of every row (one Redis command) and their running runs (one query)."""
        rows = list(rows)
        self.states = nodes.seen(rows)
        self.running = running_by_worker(self.viewer, [node.hostname for node in rows])
        self.loaded = True

    def state(self, node: Node) -> str:
        if node.id not in self.states:
            self.states.update(nodes.seen([node]))
        return self.states[node.id].state

    def runs_on(self, node: Node) -> list[Run]:
        if not self.loaded:
            return running_by_worker(self.viewer, [node.hostname]).get(node.hostname, [])
        return self.running.get(node.hostname, [])


PAGE: ContextVar[Page] = ContextVar("node_admin_page")


@contextmanager
def viewing(user: Any) -> Iterator[None]:
    token = PAGE.set(Page(user))
    try:
        yield
    finally:
        PAGE.reset(token)


def running_by_worker(viewer: Any, hostnames: list[str]) -> dict[str, list[Run]]:
    """The newest RUNNING_SHOWN running runs on each worker that ``viewer`` may see, newest
    first, in one query (a row number per worker, counted in the database)."""
    newest = Window(RowNumber(), partition_by=F("worker"),
                    order_by=[F("started_at").desc(nulls_last=True), F("id").desc()])  # fmt: skip
    runs = Run.objects.filter(worker__in=hostnames, status=Run.Status.RUNNING)
    runs = access.visible(viewer, runs, "job__").select_related("job").annotate(rank=newest)
    found: dict[str, list[Run]] = defaultdict(list)
    for run in runs.filter(rank__lte=RUNNING_SHOWN).order_by("worker", "rank"):
        found[run.worker].append(run)
    return found


def rendered(response: Any) -> Any:
    """A TemplateResponse renders after the view returns: render it now, while the
    viewer is known."""
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        response.render()
    return response


def state_badge(state: str) -> str:
    return format_html('<span class="cf-badge" style="background:{}">{}</span>',
                       STATE_COLOURS.get(state, "#333"), state)  # fmt: skip


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ["name", "state", "label_text", "queue_text", "address", "version",
                    "last_seen", "running_runs"]  # fmt: skip
    list_filter = ["draining"]
    search_fields = ["name", "host", "address"]
    fields = ["name", "hostname", "host", "address", "queues", "labels", "version",
              "started_at", "last_seen", "state", "draining", "running_runs"]  # fmt: skip
    readonly_fields = ["name", "hostname", "host", "address", "queues", "version",
                       "started_at", "last_seen", "state", "running_runs"]  # fmt: skip

    class Media:
        css = {"all": ["scheduler_app/admin.css"]}  # the state badges

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a worker registers itself

    # The admin is one instance for every request (and thread): the viewer whose access
    # rules limit the running runs shown, and what the rows show, live in a context
    # variable for the request, with the page rendered inside it, never on the instance.
    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        with viewing(request.user):
            return rendered(super().changelist_view(request, extra_context))

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: Any = None) -> Any:  # fmt: skip
        with viewing(request.user):
            return rendered(super().change_view(request, object_id, form_url, extra_context))

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        """The page's rows, with their states and running runs read for all of them."""
        changelist = super().get_changelist_instance(request)
        page = PAGE.get(None)
        if page is not None:
            page.load(changelist.result_list)  # the rows the template then iterates
        return changelist

    @admin.display(description="state")
    def state(self, node: Node) -> str:
        page = PAGE.get(None)
        return state_badge(page.state(node) if page else nodes.seen([node])[node.id].state)

    @admin.display(description="labels")
    def label_text(self, node: Node) -> str:
        return ",".join(f"{key}={value}" for key, value in sorted(node.labels.items())) or "-"

    @admin.display(description="queues")
    def queue_text(self, node: Node) -> str:
        return ", ".join(node.queues) or "-"

    @admin.display(description="running")
    def running_runs(self, node: Node) -> str:
        page = PAGE.get(None)
        shown = page.runs_on(node) if page is not None else []
        if not shown:
            return "-"
        return format_html_join(", ", '<a href="{}">#{} {}</a>',
                                ((run_url(r.id), r.id, r.job.name) for r in shown))  # fmt: skip

    def save_model(self, request: HttpRequest, obj: Node, form: Any, change: bool) -> None:
        obj.save(update_fields=["labels"])
        if "draining" in form.changed_data:
            nodes.set_draining(obj, obj.draining)

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)
        form.clean_labels = _clean_labels  # type: ignore[attr-defined]
        return form


def _clean_labels(form: forms.ModelForm) -> dict[str, str]:
    try:
        return selectors.check_labels(form.cleaned_data["labels"])
    except selectors.SelectorError as exc:
        raise forms.ValidationError(str(exc)) from exc


class NodeGroupForm(forms.ModelForm):
    class Meta:
        model = NodeGroup
        fields = ["name", "description", "nodes", "selector"]

    def clean_selector(self) -> str:
        try:
            selectors.parse(self.cleaned_data["selector"])
        except selectors.SelectorError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return self.cleaned_data["selector"].strip()

    def clean_nodes(self) -> list[str]:
        names = self.cleaned_data["nodes"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise forms.ValidationError("a list of node names.")
        if problems := nodes.unknown_names({"nodes": names}):
            raise forms.ValidationError(problems)
        return names


@admin.register(NodeGroup)
class NodeGroupAdmin(admin.ModelAdmin):
    form = NodeGroupForm
    list_display = ["name", "selector", "member_names", "updated_at"]
    search_fields = ["name", "selector"]

    @admin.display(description="members")
    def member_names(self, group: NodeGroup) -> str:
        found = nodes.members(group, Node.objects.order_by("name"))
        return ", ".join(node.name for node in found) or "-"
