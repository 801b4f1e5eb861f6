from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

# Views are included by dotted path: config imports nothing from core or the apps.
# The admin says whose it is (Django's default is "Django administration").
admin.site.site_header = "Order service"
admin.site.site_title = "Order service admin"
admin.site.index_title = "Operations"

api_v1: list[URLPattern | URLResolver] = [
    path("", include("core.api_urls")),
    path("", include("inventory.urls")),
    path("", include("orders.urls")),
    path("", include("notifications.urls")),
]

urlpatterns = [
    path("", include("core.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

handler400 = "core.error_views.bad_request"
handler403 = "core.error_views.permission_denied"
handler404 = "core.error_views.page_not_found"
handler500 = "core.error_views.server_error"
