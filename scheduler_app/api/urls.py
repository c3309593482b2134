from django.urls import include, path
from rest_framework.routers import DefaultRouter

from scheduler_app.api import audit, dashboard, deploy, fleet, porting, teams, views

router = DefaultRouter()
router.register("jobs", views.JobViewSet, basename="job")
router.register("runs", views.RunViewSet, basename="run")
router.register("calendars", views.CalendarViewSet, basename="calendar")
router.register("templates", views.JobTemplateViewSet, basename="template")
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("teams", teams.TeamViewSet, basename="team")
router.register("audit", audit.AuditEventViewSet, basename="audit")
router.register("files", deploy.StoredFileViewSet, basename="file")
router.register("software", deploy.SoftwareViewSet, basename="software")
router.register("nodes", fleet.NodeViewSet, basename="node")
router.register("node-groups", fleet.NodeGroupViewSet, basename="node-group")

urlpatterns = [
    path("health/", views.health, name="health"),
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("auth/token/rotate/", views.TokenRotate.as_view(), name="auth-token-rotate"),
    path("next-runs/", views.upcoming_runs, name="next-runs"),
    path("schedules/preview/", views.preview_schedule, name="schedule-preview"),
    path("stats/", views.stats, name="stats"),
    path("dashboard/", dashboard.dashboard_figures, name="dashboard"),
    path("export/", porting.export, name="export"),
    path("import/", porting.import_, name="import"),
    path("", include(router.urls)),
]
