from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from scheduler_app.admin_pages import dashboard_page
from scheduler_app.login_guard import AdminLoginForm
from scheduler_app.metrics_view import metrics

admin.site.site_header = "Cronfleet"
admin.site.site_title = "Cronfleet"
admin.site.index_title = "Jobs and runs"
admin.site.login_form = AdminLoginForm  # says when the account is locked
admin.site.index_template = "scheduler_app/admin/index.html"  # links to the dashboard

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/dashboard/", admin.site.admin_view(dashboard_page), name="admin-dashboard"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("scheduler_app.api.urls")),
    path("metrics", metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
