"""The fleet: ``/api/v1/nodes/`` and ``/api/v1/node-groups/``.

Nodes and node groups are shared infrastructure: every signed-in user reads them;
changing them takes the model permission (``change_node``; ``add``/``change``/
``delete_nodegroup``), which superusers have. The runs shown on a node are only
those the caller may view (scheduler_app/access.py), and so are its figures.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import F, QuerySet
from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers, viewsets
from rest_framework.permissions import DjangoModelPermissions

from scheduler_app import access, nodes, selectors
from scheduler_app.api.rows import PlainListSerializer
from scheduler_app.api.serializers import StrictBooleanField, StrictCharField, StringListField
from scheduler_app.models import Node, NodeGroup, Run

RUNS_SHOWN = 5  # the last runs shown on each node
RUNNING_SHOWN = 50


# What each node shows: its running runs, the latest started first, and its latest runs.
RUNNING_ORDER = (F("started_at").desc(nulls_last=True), F("id").desc())
LATEST_ORDER = (F("queued_at").desc(), F("id").desc())


def ids_by_branch(branches: list[QuerySet[Run]]) -> list[list[int]]:
    """The ids of each (ordered, sliced) queryset's rows, in one statement: a UNION ALL
    of them as subqueries, which SQLite takes too (Django's union() of sliced querysets
    it refuses). Each branch reads its few rows by an index."""
    parts, params = [], []
    for number, branch in enumerate(branches):
        sql, branch_params = branch.values("id").query.sql_with_params()
        parts.append(f"SELECT id, {number} FROM ({sql}) AS branch{number}")
        params.extend(branch_params)
    found: list[list[int]] = [[] for _ in branches]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        for run_id, number in cursor.fetchall():
            found[number].append(run_id)
    return found


def runs_shown(runs: QuerySet[Run], hostnames: list[str]) -> dict[str, dict[str, list[Run]]]:
    """Of ``runs``, each node's running (RUNNING_SHOWN) and latest (RUNS_SHOWN) runs by
    hostname, in two queries for any number of nodes: their ids, then the runs."""
    if not hostnames:
        return {}
    running = runs.filter(status=Run.Status.RUNNING)
    branches = ids_by_branch(
        [running.filter(worker=host).order_by(*RUNNING_ORDER)[:RUNNING_SHOWN] for host in hostnames]
        + [runs.filter(worker=host).order_by(*LATEST_ORDER)[:RUNS_SHOWN] for host in hostnames]
    )
    found = Run.objects.select_related("job").in_bulk([i for ids in branches for i in ids])
    shown = {}
    for number, host in enumerate(hostnames):
        running_runs = [found[i] for i in branches[number] if i in found]
        latest = [found[i] for i in branches[len(hostnames) + number] if i in found]
        shown[host] = {
            "running": sorted(running_runs, key=started_first, reverse=True),
            "last_runs": sorted(latest, key=lambda run: (run.queued_at, run.id), reverse=True),
        }
    return shown


def started_first(run: Run) -> tuple[bool, datetime, int]:
    """RUNNING_ORDER's key, reversed: the latest started first, those not started last."""
    started = run.started_at
    return (started is not None, started or datetime.min.replace(tzinfo=UTC), run.id)


class ReadAllChangeWithPermission(DjangoModelPermissions):
    """Reads for anyone signed in; a change with the model's permission (a read needs
    none: DjangoModelPermissions asks nothing for GET)."""


class NodeRunSerializer(serializers.ModelSerializer):
    job_name = serializers.CharField(source="job.name", read_only=True)

    class Meta:
        model = Run
        fields = ["id", "job", "job_name", "status", "started_at", "finished_at", "parent"]
        read_only_fields = fields
        list_serializer_class = PlainListSerializer


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
class LabelsField(serializers.JSONField):
    """{"key": "value"}: letters, digits, '.', '_', '-' ('/' too in keys)."""

    def to_internal_value(self, data: Any) -> dict[str, str]:
        try:
            return selectors.check_labels(data)
        except selectors.SelectorError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class NodeSerializer(serializers.ModelSerializer):
    labels = LabelsField(required=False)
    draining = StrictBooleanField(required=False)
    state = serializers.SerializerMethodField()
    last_seen = serializers.SerializerMethodField()
    running = serializers.SerializerMethodField(help_text="Its running runs you may view.")
    last_runs = serializers.SerializerMethodField(help_text="Its latest runs you may view.")
    stats = serializers.SerializerMethodField(help_text="Runs ended in the last 24 h.")

    class Meta:
        model = Node
        fields = ["id", "name", "hostname", "host", "address", "queues", "labels", "version",
                  "started_at", "last_seen", "state", "draining", "running", "last_runs",
                  "stats"]  # fmt: skip
        read_only_fields = ["name", "hostname", "host", "address", "queues", "version",
                            "started_at"]  # fmt: skip

    def _page(self, node: Node) -> list[Node]:
        """The nodes shown with this one (a list's page), asked about together."""
        return list(getattr(self.parent, "instance", None) or [node])

    def _seen(self, node: Node) -> nodes.Seen:
        known = self.context.setdefault("seen", {})
        if node.id not in known:
            known.update(nodes.seen(self._page(node)))
        return known[node.id]

    @extend_schema_field(serializers.ChoiceField(["online", "offline", "draining"]))
    def get_state(self, node: Node) -> str:
        return self._seen(node).state

    @extend_schema_field(serializers.DateTimeField())
    def get_last_seen(self, node: Node) -> str:
        return serializers.DateTimeField().to_representation(self._seen(node).last_seen)

    def _runs(self) -> QuerySet[Run]:
        user = self.context["request"].user
        return access.visible(user, Run.objects.all(), "job__")

    def _shown(self, node: Node) -> dict[str, list[Run]]:
        """The node's running and latest runs, read for the whole page at once."""
        known = self.context.setdefault("runs", {})
        if node.hostname not in known:
            known.update(runs_shown(self._runs(), [n.hostname for n in self._page(node)]))
        return known[node.hostname]

    @extend_schema_field(NodeRunSerializer(many=True))
    def get_running(self, node: Node) -> list[dict]:
        return NodeRunSerializer(self._shown(node)["running"], many=True).data

    @extend_schema_field(NodeRunSerializer(many=True))
    def get_last_runs(self, node: Node) -> list[dict]:
        return NodeRunSerializer(self._shown(node)["last_runs"], many=True).data

    @extend_schema_field(
        {"type": "object", "properties": {"runs_24h": {"type": "integer"},
                                          "failures_24h": {"type": "integer"}}}
    )  # fmt: skip
    def get_stats(self, node: Node) -> dict[str, int]:
        known = self.context.setdefault("stats", {})
        if node.hostname not in known:
            known.update(nodes.stats(self._page(node), self._runs()))
        return known[node.hostname]

    def update(self, instance: Node, validated_data: dict[str, Any]) -> Node:
        if "labels" in validated_data:
            instance.labels = validated_data["labels"]
            instance.save(update_fields=["labels"])
        if "draining" in validated_data:
            nodes.set_draining(instance, validated_data["draining"])
        return instance


class NodeViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The workers of the fleet, as each registered itself, with its state (online,
    offline, draining), its running and latest runs. PATCH sets ``labels`` (the
    worker's own SCHEDULER_NODE_LABELS apply again when it restarts) and ``draining``;
    DELETE forgets a node gone for good (a live one registers again within
    SCHEDULER_NODE_DB_EVERY seconds)."""

    queryset = Node.objects.all()
    serializer_class = NodeSerializer
    permission_classes = [ReadAllChangeWithPermission]
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context["seen"], context["stats"], context["runs"] = {}, {}, {}
        return context


class NodeGroupSerializer(serializers.ModelSerializer):
    name = StrictCharField(max_length=100)
    description = StrictCharField(required=False, allow_blank=True)
    nodes = StringListField(required=False, help_text="Node names.")
    selector = StrictCharField(required=False, allow_blank=True, max_length=2000)
    members = serializers.SerializerMethodField(help_text="The names of the nodes it holds now.")

    class Meta:
        model = NodeGroup
        fields = ["id", "name", "description", "nodes", "selector", "members", "created_at",
                  "updated_at"]  # fmt: skip
        read_only_fields = ["created_at", "updated_at"]
        validators: list[Any] = []

    @extend_schema_field({"type": "array", "items": {"type": "string"}})
    def get_members(self, group: NodeGroup) -> list[str]:
        every = self.context.get("every_node")
        if every is None:
            every = self.context["every_node"] = list(Node.objects.order_by("name"))
        return [node.name for node in nodes.members(group, every)]

    def validate_name(self, value: str) -> str:
        clash = NodeGroup.objects.filter(name=value)
        if self.instance:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(f"a node group named {value!r} exists already.")
        return value

    def validate_nodes(self, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
            raise serializers.ValidationError("must be a list of node names.")
        if len(value) > 1000:
            raise serializers.ValidationError("must be a list of at most 1000 node names.")
        names = list(dict.fromkeys(value))
        if problems := nodes.unknown_names({"nodes": names}):
            raise serializers.ValidationError(problems)
        return names

    def validate_selector(self, value: str) -> str:
        try:
            selectors.parse(value)
        except selectors.SelectorError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value.strip()


class NodeGroupViewSet(viewsets.ModelViewSet):
    """Named sets of nodes, by list (``nodes``) or label selector (``selector``: as
    Kubernetes writes them, ``role=db,zone in (eu,us)``); ``members`` are the nodes in
    it now. A job targets one by name (``targets: {"groups": [...]}``)."""

    queryset = NodeGroup.objects.all()
    serializer_class = NodeGroupSerializer
    permission_classes = [ReadAllChangeWithPermission]
