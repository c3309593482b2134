"""The fleet: ``/api/v1/nodes/`` and ``/api/v1/node-groups/``.

Nodes and node groups are shared infrastructure: every signed-in user reads them;
changing them takes the model permission (``change_node``; ``add``/``change``/
``delete_nodegroup``), which superusers have. The runs shown on a node are only
those the caller may view (scheduler_app/access.py), and so are its figures.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers, viewsets
from rest_framework.permissions import DjangoModelPermissions

from scheduler_app import access, nodes, selectors
from scheduler_app.api.rows import PlainListSerializer
from scheduler_app.api.serializers import StrictBooleanField, StrictCharField, StringListField
from scheduler_app.models import Node, NodeGroup, Run

RUNS_SHOWN = 5  # the last runs shown on each node
RUNNING_SHOWN = 50


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
        return access.visible(user, Run.objects.select_related("job"), "job__")

    @extend_schema_field(NodeRunSerializer(many=True))
    def get_running(self, node: Node) -> list[dict]:
        running = self._runs().filter(worker=node.hostname, status=Run.Status.RUNNING)
        return NodeRunSerializer(running.order_by("-started_at")[:RUNNING_SHOWN], many=True).data

    @extend_schema_field(NodeRunSerializer(many=True))
    def get_last_runs(self, node: Node) -> list[dict]:
        latest = self._runs().filter(worker=node.hostname).order_by("-queued_at", "-id")
        return NodeRunSerializer(latest[:RUNS_SHOWN], many=True).data

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
        context["seen"], context["stats"] = {}, {}
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
